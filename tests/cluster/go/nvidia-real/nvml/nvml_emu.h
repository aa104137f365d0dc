/*
 * C ABI of the few NVML structs the emulated libnvidia-ml.so.1 fills in.
 * Layouts as NVML's public header documents them (nvmlPciInfo_t v3, nvmlMemory_t,
 * nvmlEventData_t); a device or event-set handle is a plain pointer at the C ABI.
 */
#ifndef GSE_NVML_EMU_H
#define GSE_NVML_EMU_H

#include <stdint.h>

typedef int gse_return;

typedef struct {
	char busIdLegacy[16];
	unsigned int domain;
	unsigned int bus;
	unsigned int device;
	unsigned int pciDeviceId;
	unsigned int pciSubSystemId;
	char busId[32];
} gse_pci_info;

typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} gse_memory;

typedef struct {
	void *device;
	unsigned long long eventType;
	unsigned long long eventData;
	unsigned int gpuInstanceId;
	unsigned int computeInstanceId;
} gse_event_data;

/* MIG (nvmlDeviceAttributes_t, nvmlGpuInstanceProfileInfo_t, nvmlComputeInstanceProfileInfo_t,
 * nvmlGpuInstanceInfo_t, nvmlComputeInstanceInfo_t); the handles in them are pointers at the C ABI,
 * held here as uintptr_t (same size and alignment). */
typedef struct {
	unsigned int multiprocessorCount;
	unsigned int sharedCopyEngineCount;
	unsigned int sharedDecoderCount;
	unsigned int sharedEncoderCount;
	unsigned int sharedJpegCount;
	unsigned int sharedOfaCount;
	unsigned int gpuInstanceSliceCount;
	unsigned int computeInstanceSliceCount;
	unsigned long long memorySizeMB;
} gse_device_attributes;

typedef struct {
	unsigned int id;
	unsigned int isP2pSupported;
	unsigned int sliceCount;
	unsigned int instanceCount;
	unsigned int multiprocessorCount;
	unsigned int copyEngineCount;
	unsigned int decoderCount;
	unsigned int encoderCount;
	unsigned int jpegCount;
	unsigned int ofaCount;
	unsigned long long memorySizeMB;
} gse_gi_profile_info;

typedef struct {
	unsigned int id;
	unsigned int sliceCount;
	unsigned int instanceCount;
	unsigned int multiprocessorCount;
	unsigned int sharedCopyEngineCount;
	unsigned int sharedDecoderCount;
	unsigned int sharedEncoderCount;
	unsigned int sharedJpegCount;
	unsigned int sharedOfaCount;
} gse_ci_profile_info;

typedef struct {
	unsigned int start;
	unsigned int size;
} gse_placement;

typedef struct {
	uintptr_t device;
	unsigned int id;
	unsigned int profileId;
	gse_placement placement;
} gse_gi_info;

typedef struct {
	uintptr_t device;
	uintptr_t gpuInstance;
	unsigned int id;
	unsigned int profileId;
	gse_placement placement;
} gse_ci_info;

/* Logs "<name> is not implemented" on stderr and returns NVML_ERROR_NOT_SUPPORTED. */
gse_return gse_unsupported(const char *name);

#endif
