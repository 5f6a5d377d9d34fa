// safetensors read and write (contract in safetensors.h).
//
// Reading checks what the reference implementation (the Rust crate behind the Python
// package) checks, and a little more: the 8-byte length, a header of at most 100 MB that
// lies inside the file and starts with '{', entries with exactly the fields dtype, shape
// and data_offsets, known dtypes, shapes of non-negative integers whose byte size does
// not overflow and equals the entry's byte range, and ranges that tile the data buffer
// exactly (sorted by offset, no overlap, no gap, nothing after the last one). Duplicate
// keys, which a JSON parser would silently collapse, are rejected. Tensors are views of
// the memory-mapped file unless their bytes are misaligned for the element type.
//
// Writing lays the file out as the Rust crate's `prepare` does, so edgepack and the
// Python package write identical bytes for the same tensors: entries sorted by dtype in
// the crate's enum order (descending: U64, I64, F64, C64, F32, ..., U8, BOOL), then by
// name (bytewise); "__metadata__" first; compact JSON; the header padded with spaces to
// a multiple of 8 bytes. (The Python package writes __metadata__ keys in hash order; we
// sort them, so files with more than one metadata key differ only in that order.)
#include "formats/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "ir/checked.h"
#include "ir/output_file.h"

namespace ep {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Rust crate's MAX_HEADER_SIZE
constexpr size_t kMaxJsonDepth = 3;                // header object > entry > shape array
constexpr size_t kMaxArrayLength = 1024;           // a shape's rank (numpy allows 64)

// The Rust crate's `Dtype` enum, in declaration order ("increasing alignment"). The
// writer sorts by descending position in this list, as `prepare` does.
constexpr std::array<std::string_view, 22> kRustDtypeOrder = {
    "BOOL",    "F4",          "F6_E2M3",     "F6_E3M2", "U8",  "I8",  "F8_E5M2", "F8_E4M3",
    "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16",     "U16", "F16", "BF16",    "I32",
    "U32",     "F32",         "C64",         "F64",     "I64", "U64",
};

int rust_dtype_rank(DType dtype) {
    auto name = traits(dtype).safetensors_name;
    for (size_t i = 0; i < kRustDtypeOrder.size(); ++i)
        if (kRustDtypeOrder[i] == name) return static_cast<int>(i);
    throw InternalError(cat("safetensors dtype ", name, " is missing from the writer's order"));
}

std::string known_dtypes() {
    std::string list;
    for (int i = 1; i < static_cast<int>(DType::Count_); ++i) {
        auto name = traits(static_cast<DType>(i)).safetensors_name;
        if (name.empty()) continue;
        if (!list.empty()) list += ", ";
        list += name;
    }
    return list;
}

std::string type_of(const json& value) {
    if (value.is_number_unsigned()) return "a non-negative integer";
    if (value.is_number_integer()) return cat("the negative integer ", value.dump());
    if (value.is_number_float()) return cat("the non-integer number ", value.dump());
    return value.type_name();
}

// Throws the InputError `what` with "path: " in front, keeping its type.
template <typename Fn>
decltype(auto) in_file(const std::filesystem::path& path, Fn&& fn) {
    try {
        return std::forward<Fn>(fn)();
    } catch (const InputError& e) {
        throw InputError(cat(path.string(), ": ", e.what()));
    }
}

// ---------------------------------------------------------------------------------------
// Reading

// Parses the header, rejecting duplicate keys at any level and nesting or arrays deeper
// or longer than a valid header has (so a hostile 100 MB header cannot build a huge tree).
json parse_header(std::string_view text) {
    struct Level {
        bool is_object = false;
        std::set<std::string> keys;
        std::string last_key;
        size_t length = 0;
    };
    std::vector<Level> stack;
    auto count_element = [&] {
        if (!stack.empty() && !stack.back().is_object && ++stack.back().length > kMaxArrayLength)
            throw InputError(cat("header: an array under '",
                                 stack.size() >= 2 ? stack[stack.size() - 2].last_key : "",
                                 "' has more than ", kMaxArrayLength, " elements"));
    };
    auto callback = [&](int, json::parse_event_t event, json& parsed) -> bool {
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                count_element();
                if (stack.size() >= kMaxJsonDepth)
                    throw InputError(
                        cat("header: nesting deeper than a safetensors header has, under '",
                            stack.back().last_key, "'"));
                stack.push_back({event == json::parse_event_t::object_start, {}, {}, 0});
                break;
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                if (!stack.empty()) stack.pop_back();
                break;
            case json::parse_event_t::key: {
                auto& level = stack.back();
                level.last_key = parsed.get<std::string>();
                if (!level.keys.insert(level.last_key).second) {
                    if (stack.size() == 1)
                        throw InputError(cat("header: duplicate key '", level.last_key,
                                             "' (each tensor name may appear once)"));
                    throw InputError(cat("header: '", stack[stack.size() - 2].last_key,
                                         "' has the key '", level.last_key, "' twice"));
                }
                break;
            }
            case json::parse_event_t::value:
                count_element();
                break;
        }
        return true;
    };
    try {
        return json::parse(text.begin(), text.end(), callback);
    } catch (const json::exception& e) {
        throw InputError(cat("header is not valid JSON: ", e.what()));
    }
}

struct Entry {
    std::string name;
    DType dtype = DType::Undefined;
    std::vector<int64_t> shape;
    uint64_t begin = 0;
    uint64_t end = 0;
};

Entry parse_entry(const std::string& name, const json& value, uint64_t buffer_size) {
    auto fail = [&](auto&&... parts) {
        throw InputError(cat("tensor '", name, "': ", std::forward<decltype(parts)>(parts)...));
    };
    if (!value.is_object())
        fail("expected an object {dtype, shape, data_offsets}, found ", type_of(value));
    for (const auto& [key, _] : value.items())
        if (key != "dtype" && key != "shape" && key != "data_offsets")
            fail("unexpected field '", key, "' (expected dtype, shape, data_offsets)");
    for (const char* key : {"dtype", "shape", "data_offsets"})
        if (!value.contains(key)) fail("missing field '", key, "'");

    Entry entry;
    entry.name = name;
    const json& dtype = value["dtype"];
    if (!dtype.is_string()) fail("dtype must be a string, found ", type_of(dtype));
    auto parsed_dtype = dtype_from_safetensors(dtype.get_ref<const std::string&>());
    if (!parsed_dtype) fail("unknown dtype ", dtype.dump(), " (known: ", known_dtypes(), ")");
    entry.dtype = *parsed_dtype;

    const json& shape = value["shape"];
    if (!shape.is_array()) fail("shape must be a list of integers, found ", type_of(shape));
    for (const json& dim : shape) {
        if (!dim.is_number_unsigned())
            fail("shape ", shape.dump(), ": dimensions must be non-negative integers, found ",
                 type_of(dim));
        auto d = dim.get<uint64_t>();
        if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            fail("shape ", shape.dump(), ": dimension ", d, " is too large");
        entry.shape.push_back(static_cast<int64_t>(d));
    }

    const json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
        fail("data_offsets must be two non-negative integers [begin, end], found ", offsets.dump());
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.end < entry.begin) fail("data_offsets ", offsets.dump(), ": end is before begin");
    if (entry.end > buffer_size)
        fail("data_offsets ", offsets.dump(), " run past the end of the data buffer (", buffer_size,
             " bytes)");

    auto count = checked_element_count(entry.shape);
    auto bytes = count ? storage_bytes(entry.dtype, *count) : std::nullopt;
    if (!bytes)
        fail(dtype.get_ref<const std::string&>(), " x shape ", shape_string(entry.shape),
             " overflows");
    if (*bytes != entry.end - entry.begin)
        fail(dtype.get_ref<const std::string&>(), " x shape ", shape_string(entry.shape), " needs ",
             *bytes, " bytes, but data_offsets ", offsets.dump(), " cover ",
             entry.end - entry.begin);
    return entry;
}

Model read_mapped(const std::shared_ptr<const MappedFile>& file) {
    auto bytes = file->bytes();
    if (bytes.size() < 8)
        throw InputError(cat("file is ", bytes.size(),
                             " bytes; a safetensors file starts with an 8-byte header length"));
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i)
        header_size = (header_size << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
    if (header_size > kMaxHeaderBytes)
        throw InputError(cat("header length ", header_size, " exceeds the limit of ",
                             kMaxHeaderBytes, " bytes"));
    if (header_size > bytes.size() - 8)
        throw InputError(cat("header length ", header_size, " runs past the end of the file (",
                             bytes.size() - 8, " bytes follow the length field)"));
    std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8,
                          static_cast<size_t>(header_size));
    if (text.empty() || text.front() != '{')
        throw InputError("header must be a JSON object starting with '{'");
    // nlohmann's lexer takes a NUL byte for the end of input; JSON allows none anywhere.
    if (auto nul = text.find('\0'); nul != std::string_view::npos)
        throw InputError(cat("header is not valid JSON: NUL byte at header offset ", nul));
    json header = parse_header(text);
    if (!header.is_object()) throw InputError("header must be a JSON object");

    const size_t data_start = 8 + static_cast<size_t>(header_size);
    const uint64_t buffer_size = bytes.size() - data_start;
    Model model;
    model.format = SourceFormat::Safetensors;
    std::vector<Entry> entries;
    entries.reserve(header.size());
    for (const auto& [key, value] : header.items()) {  // sorted by key
        if (key == "__metadata__") {
            if (value.is_null()) continue;  // as the Rust crate: an absent map
            if (!value.is_object())
                throw InputError(
                    cat("__metadata__ must be an object of strings, found ", type_of(value)));
            for (const auto& [mkey, mvalue] : value.items()) {
                if (!mvalue.is_string())
                    throw InputError(cat("__metadata__ '", mkey,
                                         "': value must be a string, found ", type_of(mvalue)));
                model.metadata.emplace_back(mkey, mvalue.get<std::string>());
            }
            continue;
        }
        entries.push_back(parse_entry(key, value, buffer_size));
    }

    // The ranges, in offset order, must tile [0, buffer_size) exactly.
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
    });
    uint64_t position = 0;
    const Entry* previous = nullptr;
    for (const auto& e : entries) {
        if (e.begin < position)
            throw InputError(cat("tensor '", e.name, "': data_offsets [", e.begin, ", ", e.end,
                                 "] overlap tensor '", previous->name, "' [", previous->begin, ", ",
                                 previous->end, "]"));
        if (e.begin > position)
            throw InputError(cat("bytes [", position, ", ", e.begin,
                                 ") of the data buffer belong to no tensor (a gap before "
                                 "tensor '",
                                 e.name, "'); the offsets must cover the buffer"));
        position = e.end;
        previous = &e;
    }
    if (position != buffer_size)
        throw InputError(cat("bytes [", position, ", ", buffer_size,
                             ") at the end of the data buffer belong to no tensor; the "
                             "offsets must cover the buffer"));

    model.graph.initializers.reserve(entries.size());
    for (auto& e : entries) {
        Tensor t;
        t.name = std::move(e.name);
        t.dtype = e.dtype;
        t.shape = std::move(e.shape);
        size_t offset = data_start + static_cast<size_t>(e.begin);
        size_t size = static_cast<size_t>(e.end - e.begin);
        size_t align = static_cast<size_t>(std::clamp(traits(t.dtype).bits / 8, 1, 8));
        const std::byte* p = bytes.data() + offset;
        if (reinterpret_cast<uintptr_t>(p) % align == 0) {
            t.data = TensorData::view(file, offset, size);
        } else {  // keep the IR's alignment invariant: copy
            t.data = TensorData::owned(std::vector<std::byte>(p, p + size));
        }
        model.graph.initializers.push_back(std::move(t));
    }
    return model;
}

// ---------------------------------------------------------------------------------------
// Writing

// A JSON string literal as serde_json writes it (UTF-8 kept, control characters escaped).
std::string json_string(const std::string& s, const std::string& what) {
    try {
        return json(s).dump(-1, ' ', false, json::error_handler_t::strict);
    } catch (const json::exception&) {
        throw InputError(cat(what, " is not valid UTF-8"));
    }
}

void write_le64(ByteSink& sink, uint64_t v) {
    std::array<std::byte, 8> b;
    for (size_t i = 0; i < 8; ++i) b[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
    sink.write(std::span<const std::byte>(b));
}

// A tensor to write: as the header describes it (the model's tensor, or a streamed
// replacement's header) and where its bytes come from.
struct Outgoing {
    const Tensor* header;
    const StreamedTensor* streamed;  // null: header->data
    uint64_t bytes;
};

void write_file(const Model& model, const std::filesystem::path& path,
                const StreamedTensors* streamed) {
    std::vector<Outgoing> tensors;
    std::set<std::string_view> names;
    for (const Tensor& source : model.graph.initializers) {
        const StreamedTensor* s = nullptr;
        if (streamed) {
            auto it = streamed->find(&source);
            if (it != streamed->end()) s = &it->second;
        }
        const Tensor& t = s ? s->header : source;
        if (t.dtype == DType::String)
            throw InputError(
                cat("tensor '", t.name, "': string tensors cannot be stored in safetensors"));
        if (t.dtype == DType::Undefined || traits(t.dtype).safetensors_name.empty())
            throw InputError(cat("tensor '", t.name, "': dtype ", dtype_name(t.dtype),
                                 " has no safetensors equivalent (safetensors has ", known_dtypes(),
                                 ")"));
        if (t.name == "__metadata__")
            throw InputError(
                "a tensor named '__metadata__' cannot be stored in safetensors "
                "(the name is reserved for the metadata map)");
        if (!names.insert(t.name).second)
            throw InputError(cat("tensor '", t.name, "' appears twice"));
        if (!s)
            t.check_consistent();
        else if (t.is_encoded() || t.expected_bytes() != s->bytes)
            throw InternalError(cat("tensor '", t.name, "': a streamed tensor of ", s->bytes,
                                    " bytes does not match its header"));
        tensors.push_back({&t, s, s ? s->bytes : t.data.size()});
    }
    std::stable_sort(tensors.begin(), tensors.end(), [](const Outgoing& a, const Outgoing& b) {
        int ra = rust_dtype_rank(a.header->dtype), rb = rust_dtype_rank(b.header->dtype);
        if (ra != rb) return ra > rb;
        return a.header->name < b.header->name;  // char_traits<char>: unsigned, bytewise
    });

    std::string header = "{";
    if (!model.metadata.empty()) {
        std::map<std::string, std::string> metadata;
        for (const auto& [key, value] : model.metadata)
            if (!metadata.emplace(key, value).second)
                throw InputError(cat("metadata key '", key, "' appears twice"));
        header += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [key, value] : metadata) {
            if (!first) header += ',';
            first = false;
            header += json_string(key, cat("metadata key '", key, "'"));
            header += ':';
            header += json_string(value, cat("the value of metadata key '", key, "'"));
        }
        header += '}';
        if (!tensors.empty()) header += ',';
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const Tensor& t = *tensors[i].header;
        auto end = checked_add(offset, tensors[i].bytes);
        if (!end) throw InputError("the tensors' total size overflows");
        if (i) header += ',';
        header += json_string(t.name, cat("tensor name '", t.name, "'"));
        header += ":{\"dtype\":\"";
        header += traits(t.dtype).safetensors_name;
        header += "\",\"shape\":[";
        for (size_t d = 0; d < t.shape.size(); ++d) {
            if (d) header += ',';
            header += std::to_string(t.shape[d]);
        }
        header += "],\"data_offsets\":[";
        header += cat(offset, ',', *end, "]}");
        offset = *end;
    }
    header += '}';
    header.append((8 - header.size() % 8) % 8, ' ');
    if (header.size() > kMaxHeaderBytes)
        throw InputError(cat("the header would be ", header.size(),
                             " bytes, over the format's limit of ", kMaxHeaderBytes));

    OutputFile out(path);
    write_le64(out, header.size());
    out.write(std::string_view(header));
    for (const Outgoing& t : tensors) {
        if (t.streamed)
            write_streamed(*t.streamed, out);
        else
            write_tensor_bytes(out, t.header->data);
    }
    out.commit();
}

}  // namespace

Model read_safetensors(const std::filesystem::path& path) {
    auto file = MappedFile::open(path);
    return in_file(path, [&] { return read_mapped(file); });
}

void write_safetensors(const Model& model, const std::filesystem::path& path,
                       const StreamedTensors* streamed) {
    in_file(path, [&] { write_file(model, path, streamed); });
}

}  // namespace ep
