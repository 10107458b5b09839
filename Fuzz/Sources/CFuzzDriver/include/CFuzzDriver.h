// libFuzzer's driver, called from each target's entry point. SwiftPM names an executable's entry
// point `<module>_main` (and links `main` to it), so each target defines that symbol and hands over
// to libFuzzer here instead of relying on libFuzzer's own `main`.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
