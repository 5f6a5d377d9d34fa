// The recipe's "calibration" section as a calib::DataProvider: compressor/dataset.h's
// sources (npz / input folders / sample folders / token-id .npy / random) with the
// recipe's sample count, seed and limit.
//
// Choice of samples: n = samples (0: every sample the data holds). More than max_samples
// is an InputError naming calibration.samples. When the data holds more than n samples,
// n of them are chosen by a seeded partial Fisher-Yates shuffle (splitmix64 from `seed`:
// the same recipe always picks the same samples) and used in data order. Random data
// (no "data") gives n samples with seeds seed, seed+1, ... as `edgepack run` does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "calibration/calibration.h"
#include "compressor/recipe.h"

namespace ep {

// `what` names the recipe in messages ("recipe.json").
[[nodiscard]] std::unique_ptr<calib::DataProvider> make_calibration_provider(
    const CalibrationConfig& config, const std::string& what);

// Reads every sample the provider would choose and checks it against the model's inputs
// (InputError "<what>: calibration.data: ..."), without running the model: what `compress`
// and its --dry-run check before any pass runs. Random samples need no check.
void check_calibration_data(const CalibrationConfig& config, const std::vector<ValueInfo>& feeds,
                            const std::string& what);

}  // namespace ep
