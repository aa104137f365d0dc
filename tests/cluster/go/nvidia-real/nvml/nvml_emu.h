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

/* Logs "<name> is not implemented" on stderr and returns NVML_ERROR_NOT_SUPPORTED. */
gse_return gse_unsupported(const char *name);

#endif
