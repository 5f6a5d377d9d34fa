// libFuzzer harness: the recipe reader (compressor/recipe: JSON parse, then validation
// against the pass registry's option tables), as `edgepack compress RECIPE` loads it. The
// recipe sits beside an empty "model.onnx", so recipes naming that model get past the
// model check (the loader's last) as well.
#include "compressor/recipe.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool model_made = [] {
        (void)ep::fuzz::input_file({}, "model.onnx");
        return true;
    }();
    (void)model_made;
    auto path = ep::fuzz::input_file({data, size}, "recipe.json");
    ep::fuzz::expect_ok_or_input_error([&] { (void)ep::load_recipe(path); });
    return 0;
}
