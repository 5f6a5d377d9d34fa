// The .epkd delta (the format is specified in epk_delta.h).
//
// diff: read both packs through read_epk (whole-file and per-tensor checksums verified, so
// a tensor table's SHA-256 is the truth about its bytes), index the base's tensors by
// SHA-256, walk the target's bytes in order and make one record per run: copied from the
// base, carried in the payload, or zeros. Then write header, records, payload (streamed
// from the target's mapping) and the trailer.
// apply: check the delta as read_epk checks a pack (trailer first, then every field
// bounded), check the base's SHA-256, then stream the records into an OutputFile while
// hashing, and commit only when the hash is the target's.
#include "formats/epk_delta.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

#include "formats/epk.h"
#include "formats/epk_internal.h"
#include "ir/checked.h"
#include "ir/error.h"
#include "ir/mapped_file.h"

namespace ep {
namespace {

constexpr std::array<uint8_t, 8> kDeltaMagic = {0x89, 'E', 'P', 'D', 0x0D, 0x0A, 0x1A, 0x0A};
constexpr size_t kChunk = size_t{8} << 20;  // bytes per streaming step (pages released after)
constexpr uint64_t kMinTargetBytes = kEpkHeaderBytes + kEpkChecksumBytes;

// Counts what is written and keeps nothing (the dry runs).
class DiscardSink final : public ByteSink {
  public:
    void write(std::span<const std::byte> bytes) override { position_ += bytes.size(); }
    using ByteSink::write;
    [[nodiscard]] uint64_t position() const override { return position_; }

  private:
    uint64_t position_ = 0;
};

// Copies [offset, offset + size) of a mapped file to `out` in chunks, releasing the pages.
void copy_range(const MappedFile& file, uint64_t offset, uint64_t size, ByteSink& out,
                Progress::Step& step) {
    auto all = file.bytes();
    for (uint64_t done = 0; done < size; done += kChunk) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - done));
        size_t at = static_cast<size_t>(offset + done);
        out.write(all.subspan(at, n));
        file.release(at, n);
        step.advance(n);
    }
}

bool all_zero(std::span<const std::byte> bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::array<std::byte, 32> digest_from_hex(const std::string& h) {
    std::array<std::byte, 32> out{};
    for (size_t i = 0; i < 32; ++i)
        out[i] = static_cast<std::byte>(std::stoul(h.substr(2 * i, 2), nullptr, 16));
    return out;
}

const char* source_name(uint32_t kind) {
    switch (static_cast<DeltaSource>(kind)) {
        case DeltaSource::Delta:
            return "delta";
        case DeltaSource::Base:
            return "base";
        case DeltaSource::Zeros:
            return "zeros";
    }
    return "unknown";
}

// The records that rebuild `target` (its table `tt`, its bytes `bytes`) from a base whose
// table is `bt`, and the statistics of what they reuse.
std::vector<DeltaRecord> plan_records(const std::vector<EpkTableEntry>& bt,
                                      const std::vector<EpkTableEntry>& tt,
                                      std::span<const std::byte> bytes, uint64_t manifest_offset,
                                      EpkDeltaStats& stats) {
    std::unordered_map<std::string, const EpkTableEntry*> base_by_hash, base_by_name;
    for (const auto& e : bt) {
        base_by_hash.emplace(e.sha256, &e);  // the first tensor with these bytes
        base_by_name.emplace(e.name, &e);
    }
    // The base tensor with these bytes: the one of the same name when it has them (so
    // "renamed" counts only tensors the base holds under other names), else the first.
    auto find_in_base = [&](const EpkTableEntry& e) -> const EpkTableEntry* {
        if (auto it = base_by_name.find(e.name);
            it != base_by_name.end() && it->second->sha256 == e.sha256)
            return it->second;
        auto it = base_by_hash.find(e.sha256);
        return it == base_by_hash.end() ? nullptr : it->second;
    };
    std::vector<DeltaRecord> records;
    uint64_t payload = 0;
    auto add = [&](DeltaSource kind, uint64_t source, uint64_t length) {
        if (length == 0) return;
        if (!records.empty()) {
            DeltaRecord& last = records.back();
            if (last.kind == kind &&
                (kind == DeltaSource::Zeros || last.source + last.length == source)) {
                last.length += length;
                return;
            }
        }
        records.push_back({kind, source, length});
    };
    auto carry = [&](uint64_t length) {
        add(DeltaSource::Delta, payload, length);
        payload += length;
    };
    // Padding between tensors is zero in every file the writer makes; anything else is
    // carried, so the rebuilt file is the target whatever its gaps hold.
    auto gap = [&](uint64_t from, uint64_t to) {
        if (to <= from) return;
        if (all_zero(bytes.subspan(static_cast<size_t>(from), static_cast<size_t>(to - from))))
            add(DeltaSource::Zeros, 0, to - from);
        else
            carry(to - from);
    };

    carry(kEpkHeaderBytes);
    uint64_t position = kEpkHeaderBytes;
    for (const auto& e : tt) {
        gap(position, e.offset);
        ++stats.tensors;
        if (const EpkTableEntry* from = find_in_base(e)) {
            add(DeltaSource::Base, from->offset, e.bytes);
            ++stats.tensors_reused;
            stats.bytes_reused += e.bytes;
            if (from->name != e.name) ++stats.tensors_renamed;
        } else {
            carry(e.bytes);
            stats.bytes_changed += e.bytes;
            stats.changed.push_back({e.name, e.bytes, base_by_name.count(e.name) > 0});
        }
        position = e.offset + e.bytes;
    }
    gap(position, manifest_offset);
    carry(bytes.size() - manifest_offset);  // manifest and checksum trailer
    stats.bytes_other = payload - stats.bytes_changed;
    return records;
}

EpkDelta parse_delta(const MappedFile& file) {
    const auto all = file.bytes();
    const uint64_t size = all.size();
    const uint64_t min_size = kEpkDeltaHeaderBytes + kEpkDeltaRecordBytes + kEpkChecksumBytes;
    if (size < min_size)
        throw InputError(cat("file is ", size, " bytes; an .epkd delta has at least ", min_size,
                             " (a 128-byte header, one 24-byte record and a 32-byte checksum): "
                             "truncated, or not a delta"));
    const std::byte* p = all.data();
    auto digest = sha256_before_trailer(file);
    const bool magic =
        std::memcmp(p, kDeltaMagic.data(), kDeltaMagic.size()) == 0;  // checked after the sum
    if (std::memcmp(digest.data(), p + size - kEpkChecksumBytes, kEpkChecksumBytes) != 0) {
        std::string hint;
        if (has_epk_magic(all))
            hint = " (it starts as an .epk pack, not a delta)";
        else if (!magic)
            hint = " (its first bytes are not the .epkd magic: not a delta?)";
        throw InputError(cat("checksum mismatch: the delta is corrupt or truncated", hint));
    }
    if (!magic)
        throw InputError(has_epk_magic(all)
                             ? "header: this is an .epk pack, not a delta (apply takes OLD.epk "
                               "DELTA.epkd)"
                             : "header: bad magic (not an .epkd delta)");
    if (auto v = get_le(p + 8, 4); v != kEpkDeltaFormatVersion)
        throw InputError(cat("header: format version ", v,
                             " is not supported (this edgepack reads version ",
                             kEpkDeltaFormatVersion, ")"));
    if (auto hs = get_le(p + 12, 4); hs != kEpkDeltaHeaderBytes)
        throw InputError(cat("header: header_size ", hs, " (expected ", kEpkDeltaHeaderBytes, ")"));
    if (!all_zero(all.subspan(112, 16)))
        throw InputError("header: the reserved bytes [112, 128) are not zero");
    EpkDelta d;
    d.base_sha256 = hex(all.subspan(16, 32));
    d.base_length = get_le(p + 48, 8);
    d.target_sha256 = hex(all.subspan(56, 32));
    d.target_length = get_le(p + 88, 8);
    const uint64_t count = get_le(p + 96, 8);
    d.payload_length = get_le(p + 104, 8);
    d.file_length = size;
    // The sections tile the file: header, records, payload, checksum.
    auto records_bytes = checked_mul(count, kEpkDeltaRecordBytes);
    auto payload_offset =
        records_bytes ? checked_add(kEpkDeltaHeaderBytes, *records_bytes) : std::nullopt;
    auto end = payload_offset ? checked_add(*payload_offset, d.payload_length) : std::nullopt;
    if (count == 0 || !end || *end != size - kEpkChecksumBytes)
        throw InputError(cat("header: ", count, " records of ", kEpkDeltaRecordBytes,
                             " bytes and a payload of ", d.payload_length,
                             " bytes do not fill the file's ", size - kEpkChecksumBytes,
                             " bytes between the header and the checksum"));
    d.payload_offset = *payload_offset;
    if (d.target_length < kMinTargetBytes)
        throw InputError(cat("header: target_length ", d.target_length,
                             " (an .epk pack has at least ", kMinTargetBytes, " bytes)"));

    d.records.reserve(static_cast<size_t>(count));
    uint64_t target = 0, payload = 0;
    for (uint64_t i = 0; i < count; ++i) {
        const std::byte* r = p + kEpkDeltaHeaderBytes + i * kEpkDeltaRecordBytes;
        const auto kind = static_cast<uint32_t>(get_le(r, 4));
        const uint64_t source = get_le(r + 8, 8), length = get_le(r + 16, 8);
        auto fail = [&](auto&&... args) {
            throw InputError(cat("record ", i, " (", source_name(kind), ", source ", source,
                                 ", length ", length, "): ", args...));
        };
        if (kind < 1 || kind > 3) fail("kind ", kind, " (expected 1 delta, 2 base or 3 zeros)");
        if (auto reserved = get_le(r + 4, 4); reserved != 0)
            fail("reserved field is ", reserved, " (expected 0)");
        if (length == 0) fail("length 0 (a record has at least one byte)");
        auto source_end = checked_add(source, length);
        switch (static_cast<DeltaSource>(kind)) {
            case DeltaSource::Delta:
                if (source != payload)
                    fail(
                        "the payload is read in order: this record must start at payload "
                        "offset ",
                        payload);
                if (!source_end || *source_end > d.payload_length)
                    fail("runs past the payload (", d.payload_length, " bytes)");
                payload = *source_end;
                break;
            case DeltaSource::Base:
                if (!source_end || *source_end > d.base_length)
                    fail("runs past the base file (", d.base_length, " bytes)");
                break;
            case DeltaSource::Zeros:
                if (source != 0) fail("a zeros record has source 0");
                break;
        }
        auto next = checked_add(target, length);
        if (!next || *next > d.target_length)
            fail("the records run past target_length (", d.target_length, " bytes)");
        target = *next;
        d.records.push_back({static_cast<DeltaSource>(kind), source, length});
    }
    if (target != d.target_length)
        throw InputError(
            cat("the records rebuild ", target, " bytes, but target_length is ", d.target_length));
    if (payload != d.payload_length)
        throw InputError(
            cat("the delta records use ", payload, " payload bytes of ", d.payload_length));
    return d;
}

void write_delta(const EpkDelta& d, std::span<const std::byte> target, ByteSink& sink,
                 Progress* progress) {
    HashingSink out(sink);
    std::array<std::byte, kEpkDeltaHeaderBytes> header{};
    std::memcpy(header.data(), kDeltaMagic.data(), kDeltaMagic.size());
    put_le(&header[8], kEpkDeltaFormatVersion, 4);
    put_le(&header[12], kEpkDeltaHeaderBytes, 4);
    auto base_digest = digest_from_hex(d.base_sha256);
    std::memcpy(&header[16], base_digest.data(), 32);
    put_le(&header[48], d.base_length, 8);
    auto target_digest = digest_from_hex(d.target_sha256);
    std::memcpy(&header[56], target_digest.data(), 32);
    put_le(&header[88], d.target_length, 8);
    put_le(&header[96], d.records.size(), 8);
    put_le(&header[104], d.payload_length, 8);
    out.write(std::span<const std::byte>(header));
    for (const auto& r : d.records) {
        std::array<std::byte, kEpkDeltaRecordBytes> rec{};
        put_le(&rec[0], static_cast<uint32_t>(r.kind), 4);
        put_le(&rec[8], r.source, 8);
        put_le(&rec[16], r.length, 8);
        out.write(std::span<const std::byte>(rec));
    }
    auto step = progress_step(progress, "diff", d.payload_length, "bytes");
    uint64_t at = 0;
    for (const auto& r : d.records) {
        if (r.kind == DeltaSource::Delta)
            for (uint64_t done = 0; done < r.length; done += kChunk) {
                size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, r.length - done));
                out.write(target.subspan(static_cast<size_t>(at + done), n));
                step.advance(n);
            }
        at += r.length;
    }
    auto digest = out.finish();
    sink.write(std::span<const std::byte>(digest));
}

}  // namespace

EpkDeltaStats diff_epk(const std::filesystem::path& base, const std::filesystem::path& target,
                       ByteSink& out, Progress* progress) {
    // Both packs are verified whole, tensor checksums included: a copy is made on the
    // strength of the base's table hash, so that hash must be the truth.
    const std::vector<EpkTableEntry> base_table = read_epk_table(base).tensors;
    const EpkTable target_table = read_epk_table(target);
    const EpkInfo& target_info = target_table.info;
    auto target_file = MappedFile::open(target);
    auto bytes = target_file->bytes();
    if (bytes.size() != target_info.file_length)
        throw InputError(cat(target.string(), ": the file changed while it was read"));

    EpkDeltaStats stats;
    EpkDelta d;
    d.records =
        plan_records(base_table, target_table.tensors, bytes, target_info.manifest_offset, stats);
    d.base_sha256 = sha256_file_hex(base);
    d.base_length = std::filesystem::file_size(base);
    d.target_sha256 = sha256_file_hex(target);
    d.target_length = bytes.size();
    for (const auto& r : d.records)
        if (r.kind == DeltaSource::Delta) d.payload_length += r.length;

    stats.base_sha256 = d.base_sha256;
    stats.target_sha256 = d.target_sha256;
    stats.base_bytes = d.base_length;
    stats.target_bytes = d.target_length;
    stats.delta_bytes = kEpkDeltaHeaderBytes + d.records.size() * kEpkDeltaRecordBytes +
                        d.payload_length + kEpkChecksumBytes;
    const uint64_t start = out.position();
    write_delta(d, bytes, out, progress);
    if (out.position() - start != stats.delta_bytes)
        throw InternalError(cat(".epkd writer: wrote ", out.position() - start, " bytes, expected ",
                                stats.delta_bytes));
    return stats;
}

EpkDeltaStats diff_epk(const std::filesystem::path& base, const std::filesystem::path& target,
                       const std::filesystem::path& path, bool dry_run, Progress* progress) {
    for (const auto* input : {&base, &target}) {
        std::error_code ec;
        if (std::filesystem::equivalent(path, *input, ec))
            throw InputError(
                cat(path.string(), ": the delta would replace its input ", input->string()));
    }
    if (dry_run) {
        DiscardSink sink;
        return diff_epk(base, target, sink, progress);
    }
    OutputFile out(path);
    auto stats = diff_epk(base, target, out, progress);
    out.commit();
    return stats;
}

EpkDelta read_epk_delta_header(const std::filesystem::path& delta) {
    auto file = MappedFile::open(delta);
    try {
        return parse_delta(*file);
    } catch (const InputError& e) {
        throw InputError(cat(delta.string(), ": ", e.what()));
    }
}

EpkApplyStats apply_epk_delta(const std::filesystem::path& base, const std::filesystem::path& delta,
                              const std::filesystem::path& output, bool dry_run,
                              Progress* progress) {
    const EpkDelta d = read_epk_delta_header(delta);
    auto delta_file = MappedFile::open(delta);

    auto base_file = MappedFile::open(base);
    const std::string base_sha = sha256_file_hex(base);
    if (base_sha != d.base_sha256 || base_file->size() != d.base_length)
        throw InputError(cat(delta.string(), ": made for a base pack with SHA-256 ", d.base_sha256,
                             " (", d.base_length, " bytes), but ", base.string(), " has SHA-256 ",
                             base_sha, " (", base_file->size(),
                             " bytes): apply it to the pack it was made from"));

    if (!dry_run) {
        auto dir = output.parent_path().empty() ? std::filesystem::path(".") : output.parent_path();
        std::error_code ec;
        auto space = std::filesystem::space(dir, ec);
        if (!ec && space.available < d.target_length)
            throw InputError(cat(output.string(), ": the rebuilt pack needs ", d.target_length,
                                 " bytes, but ", dir.string(), " has ", space.available,
                                 " bytes free"));
    }

    EpkApplyStats stats;
    auto rebuild = [&](ByteSink& sink) {
        HashingSink out(sink);
        auto step = progress_step(progress, "apply", d.target_length, "bytes");
        const auto payload = delta_file->bytes().subspan(static_cast<size_t>(d.payload_offset),
                                                         static_cast<size_t>(d.payload_length));
        for (const auto& r : d.records) {
            switch (r.kind) {
                case DeltaSource::Delta:
                    for (uint64_t done = 0; done < r.length; done += kChunk) {
                        size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, r.length - done));
                        out.write(payload.subspan(static_cast<size_t>(r.source + done), n));
                        step.advance(n);
                    }
                    stats.bytes_from_delta += r.length;
                    break;
                case DeltaSource::Base:
                    copy_range(*base_file, r.source, r.length, out, step);
                    stats.bytes_from_base += r.length;
                    break;
                case DeltaSource::Zeros:
                    out.write_zeros(static_cast<size_t>(r.length));
                    step.advance(r.length);
                    stats.bytes_zero += r.length;
                    break;
            }
        }
        stats.target_sha256 = hex(out.finish());
        stats.target_bytes = d.target_length;
        if (stats.target_sha256 != d.target_sha256)
            throw InputError(cat(delta.string(), ": the rebuilt pack has SHA-256 ",
                                 stats.target_sha256, ", not the ", d.target_sha256,
                                 " the delta records: the delta is inconsistent; nothing "
                                 "was written"));
    };
    if (dry_run) {
        DiscardSink sink;
        rebuild(sink);
    } else {
        OutputFile out(output);
        rebuild(out);
        out.commit();
    }
    return stats;
}

}  // namespace ep
