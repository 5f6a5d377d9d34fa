// libFuzzer harness: the .npy reader (runtime-check/npy) and the .npz reader
// (compressor/dataset: libzip, then each member through the .npy reader), as `edgepack run
// --input NAME=FILE.npy` and `--data DIR` of .npz files read them. Bytes starting with a
// zip signature ("PK") go to the .npz reader, the rest to the .npy reader.
#include "compressor/dataset.h"
#include "runtime-check/npy.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    bool zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
    if (zip) {
        auto path = ep::fuzz::input_file({data, size}, "sample.npz");
        ep::fuzz::expect_ok_or_input_error([&] { (void)ep::read_npz(path); });
    } else {
        auto path = ep::fuzz::input_file({data, size}, "input.npy");
        ep::fuzz::expect_ok_or_input_error([&] { (void)ep::read_npy(path); });
    }
    return 0;
}
