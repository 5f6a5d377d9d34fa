// libFuzzer harness: the ONNX reader (formats/onnx_io) through load_model, as `edgepack
// inspect / run / compress` open a .onnx file, then again as `compress` reads a source whose
// opset a recipe needs raised (a quantize-static pass or a .onnx output: opset 13, through
// ONNX's shape inference and version converter, formats/onnx_version). A 64-byte
// "weights.bin" lies beside the model, so external data references can resolve.
#include "formats/model_io.h"
#include "formats/onnx_quant_export.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool placed = [] {
        (void)ep::fuzz::input_file(ep::fuzz::kExternalWeights, "weights.bin");
        return true;
    }();
    (void)placed;
    auto path = ep::fuzz::input_file({data, size}, "model.onnx");
    ep::fuzz::expect_ok_or_input_error([&] { (void)ep::load_model(path); });
    ep::fuzz::expect_ok_or_input_error(
        [&] { (void)ep::load_model(path, ep::OnnxReadOptions{.min_opset = ep::kMinExportOpset}); });
    return 0;
}
