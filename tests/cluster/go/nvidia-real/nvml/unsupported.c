// Every NVML entry point the emulated library does not implement ends here, loudly.
#include <stdio.h>
#include "nvml_emu.h"

gse_return gse_unsupported(const char *name) {
	fprintf(stderr, "gpu-slicing-eks emulated NVML: %s is not implemented, returning NVML_ERROR_NOT_SUPPORTED\n", name);
	fflush(stderr);
	return 3; /* NVML_ERROR_NOT_SUPPORTED */
}
