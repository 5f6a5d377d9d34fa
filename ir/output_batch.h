// Companions of OutputFile (ir/output_file.h) for commands that write several files:
// outputs that appear together, the checks run before the first byte, and the clean-up of
// temporaries a killed run left.
//
// Temporaries: OutputFile writes NAME through `.NAME.edgepack-tmp-PID-XXXXXX` beside it (a
// dot-file: hidden, and no reader of ours takes it for an output). Only SIGKILL (or a power
// cut) can leave one behind; the next OutputFile for the same NAME removes every such
// temporary whose PID is no longer a running process (remove_stale_temporaries), so a
// re-run cleans up after a killed one, and a temporary of a run still writing is left alone.
//
// OutputBatch makes several files appear together: while one is open, OutputFile::commit()
// writes, syncs and closes the temporary but leaves the rename to OutputBatch::commit(),
// which renames every file in the order they were committed. A batch destroyed
// uncommitted removes its temporaries (SIGINT/SIGTERM too), so a run that fails or is
// killed before the end of its writing leaves none of its outputs, not only no
// half-written one, and the files an earlier run left at those paths as they were.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace ep {

// One open at a time per process (a second is an InternalError).
class OutputBatch {
  public:
    OutputBatch();
    ~OutputBatch();
    OutputBatch(const OutputBatch&) = delete;
    OutputBatch& operator=(const OutputBatch&) = delete;
    // Renames every file committed into the batch over its destination, in commit order.
    void commit();
};

// Refuses (InputError "WHAT: DIR: ...") a directory this process could not create or write
// into: the nearest existing ancestor must be a directory it may write. Creates nothing.
void check_writable_dir(const std::filesystem::path& dir, const std::string& what);
// The file is not a directory, and check_writable_dir of its folder.
void check_writable_file(const std::filesystem::path& file, const std::string& what);
// True when `a` and `b` are one file (through symlinks and hard links; by their canonical
// paths when either does not exist yet).
[[nodiscard]] bool same_file(const std::filesystem::path& a, const std::filesystem::path& b);

// Removes the temporaries `.NAME.edgepack-tmp-PID-*` beside `destination` whose PID is no
// longer running (left by a killed run); returns how many. OutputFile's constructor calls it.
size_t remove_stale_temporaries(const std::filesystem::path& destination);

}  // namespace ep
