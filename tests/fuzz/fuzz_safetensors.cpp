// libFuzzer harness: the safetensors reader (formats/safetensors, and safetensors_quant for
// encoded tensors) through load_model, as `edgepack` opens a .safetensors file.
#include "formats/model_io.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto path = ep::fuzz::input_file({data, size}, "model.safetensors");
    ep::fuzz::expect_ok_or_input_error([&] { (void)ep::load_model(path); });
    return 0;
}
