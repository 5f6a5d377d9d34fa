#include "runtime-check/run_files.h"

#include <cctype>
#include <map>

#include "ir/error.h"
#include "ir/output_batch.h"
#include "runtime-check/npy.h"

namespace ep {

std::string safe_file_name(const std::string& name) {
    std::string out = name;
    for (auto& ch : out)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-'))
            ch = '_';
    if (out.empty() || out == "." || out == "..") out = "_" + out;
    return out;
}

rt::NamedTensors read_input_files(const std::vector<std::string>& specs) {
    rt::NamedTensors feeds;
    for (const auto& spec : specs) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0)
            throw InputError(cat("--input '", spec, "': expected NAME=FILE.npy"));
        feeds.emplace_back(spec.substr(0, eq), read_npy(spec.substr(eq + 1)));
    }
    return feeds;
}

std::string output_line(const std::string& name, const Tensor& tensor,
                        const std::filesystem::path& path) {
    return cat(name, ": ", dtype_name(tensor.dtype), " ", shape_string(tensor.shape), " -> ",
               path.string());
}

void write_output_files(const rt::NamedTensors& outputs, const std::filesystem::path& dir,
                        Progress* progress) {
    std::map<std::string, std::string> file_of;  // file name -> the output written there
    for (const auto& [name, tensor] : outputs) {
        auto [it, fresh] = file_of.emplace(safe_file_name(name) + ".npy", name);
        if (!fresh)
            throw InputError(cat("outputs '", it->second, "' and '", name,
                                 "' would both be written to ", (dir / it->first).string()));
    }
    std::filesystem::create_directories(dir);
    OutputBatch batch;
    for (const auto& [name, tensor] : outputs)
        write_npy(tensor, dir / (safe_file_name(name) + ".npy"));
    batch.commit();
    if (progress)
        for (const auto& [name, tensor] : outputs)
            progress->log(output_line(name, tensor, dir / (safe_file_name(name) + ".npy")));
}

}  // namespace ep
