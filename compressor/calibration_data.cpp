// Calibration samples from a recipe's "calibration" section (contract in calibration_data.h).
#include "compressor/calibration_data.h"

#include <algorithm>
#include <numeric>

#include "compressor/dataset.h"
#include "ir/error.h"

namespace ep {

namespace {

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

DataSource source(const CalibrationConfig& config) {
    DataSource s;
    s.data = config.data;
    s.samples = config.data.empty() ? std::max<uint64_t>(config.samples, 1) : 1;
    s.seed = config.seed;
    return s;
}

class Samples final : public calib::SampleList {
  public:
    Samples(Dataset dataset, const CalibrationConfig& config, const std::string& what)
        : dataset_(std::move(dataset)) {
        size_t have = dataset_.size();
        size_t want = config.samples == 0
                          ? have
                          : std::min<size_t>(have, static_cast<size_t>(config.samples));
        if (want > config.max_samples)
            throw InputError(cat(what, ": calibration.samples: ", want, " samples (",
                                 dataset_.describe(), ") is above max_samples ", config.max_samples,
                                 "; set samples or max_samples"));
        index_.resize(have);
        std::iota(index_.begin(), index_.end(), size_t{0});
        if (want < have) {
            uint64_t state = config.seed;
            for (size_t i = 0; i < want; ++i) {
                size_t j = i + static_cast<size_t>(splitmix64(state) % (have - i));
                std::swap(index_[i], index_[j]);
            }
            index_.resize(want);
            std::sort(index_.begin(), index_.end());
        }
        describe_ = want == have
                        ? dataset_.describe()
                        : cat(want, " of ", dataset_.describe(), " (seed ", config.seed, ")");
    }

    size_t size() const override { return index_.size(); }
    rt::NamedTensors load(size_t i) const override { return dataset_.load(index_.at(i)); }
    std::string describe() const override { return describe_; }

  private:
    Dataset dataset_;
    std::vector<size_t> index_;
    std::string describe_;
};

class Provider final : public calib::DataProvider {
  public:
    Provider(CalibrationConfig config, std::string what)
        : config_(std::move(config)), what_(std::move(what)) {}

    std::unique_ptr<calib::SampleList> open(const rt::Executor& model) const override {
        return with_context(cat(what_, ": calibration.data"), [&] {
            return std::unique_ptr<calib::SampleList>(
                std::make_unique<Samples>(Dataset(model, source(config_)), config_, what_));
        });
    }
    bool synthetic() const override { return config_.data.empty(); }
    std::string what() const override {
        return cat(what_, ": calibration.data (",
                   config_.data.empty() ? std::string("random") : config_.data.string(), ")");
    }

  private:
    CalibrationConfig config_;
    std::string what_;
};

}  // namespace

std::unique_ptr<calib::DataProvider> make_calibration_provider(const CalibrationConfig& config,
                                                               const std::string& what) {
    return std::make_unique<Provider>(config, what);
}

void check_calibration_data(const CalibrationConfig& config, const std::vector<ValueInfo>& feeds,
                            const std::string& what) {
    if (config.data.empty()) return;  // random samples, made from the model's declared inputs
    with_context(cat(what, ": calibration.data"), [&] {
        Samples samples(Dataset(feeds, source(config)), config, what);
        for (size_t i = 0; i < samples.size(); ++i) (void)samples.load(i);
    });
}

}  // namespace ep
