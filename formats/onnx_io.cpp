// ONNX <-> IR conversion through the ONNX protobuf definitions (onnx 1.12's onnx-ml.proto).
//
// Reading (TensorProto -> Tensor): the element bytes come from exactly one of
//   raw_data      little-endian packed elements, size must be dtype x shape;
//   typed fields  float_data (f32; c64 as 2 floats), double_data (f64; c128 as 2),
//                 int64_data (i64), uint64_data (u32, u64), string_data (string),
//                 int32_data (i32, and one element per entry for i16/u16/i8/u8/bool, the
//                 bit pattern for f16/bf16/f8, one byte = two nibbles, low first, for i4/u4);
//   external data data_location = EXTERNAL with keys location / offset / length (length
//                 optional: then dtype x shape). The range becomes a view of the mapped
//                 data file (one mapping per file), or a copy when the view would be
//                 misaligned for the element type.
// Nothing in the file is trusted: data_type must be known, dimensions non-negative, their
// product may not overflow, byte and element counts must match exactly, external
// locations must be relative, free of "..", and resolve (symlinks followed) inside the
// model's directory; offsets and lengths are checked against the file size without
// overflow. Every error names the file and the tensor.
//
// Parts the IR does not interpret are kept as serialized protobuf bytes: non-tensor
// TypeProtos, sparse tensors, TYPE_PROTO attributes, quantization annotations, training
// info. External data inside those is read in (made inline) so the bytes stay valid
// wherever the model is written. Function attribute defaults (FunctionProto field 11,
// newer than onnx 1.12's proto) are read from and written to unknown fields.
//
// Writing (IR -> file): element bytes go to raw_data, or, when external data is on, every
// tensor of at least `external_threshold` bytes (initializers and attribute tensors alike,
// in graph order) goes to one data file next to the model at offsets aligned to 64 bytes.
// View tensors are streamed to the data file in 64 MiB chunks and their mapped pages are
// released after each chunk, so peak memory stays near one chunk plus the graph. Both files
// go through OutputFile and are committed (data first, then model) only when both are
// complete. The output is a function of the model alone: byte-identical for the same model.
#include "formats/onnx_io.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <climits>
#include <cstring>
#include <exception>
#include <map>
#include <optional>

#include "formats/onnx_quant_export.h"
#include "formats/onnx_version.h"
#include "ir/checked.h"
#include "ir/mapped_file.h"
#include "ir/output_file.h"
#include "ir/utf8.h"

namespace ep {
namespace {

namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little,
              "tensor bytes are little-endian; a big-endian host needs byte swapping here");

constexpr uint64_t kProtobufLimit = INT_MAX;            // protobuf's 2 GB message limit
constexpr uint64_t kAutoExternalBytes = 1'800'000'000;  // Auto: external above this
constexpr uint64_t kExternalAlignment = 64;             // offsets in the data file
constexpr size_t kStreamChunk = size_t{64} << 20;       // bytes written per step
constexpr int kFunctionAttributeProtoField = 11;        // FunctionProto.attribute_proto

// AttrType (our enum order) <-> AttributeProto.AttributeType codes.
constexpr int kAttrCodes[] = {0, 1, 2, 3, 4, 5, 11, 13, 6, 7, 8, 9, 10, 12, 14};
static_assert(std::size(kAttrCodes) == static_cast<size_t>(AttrType::TypeProtos) + 1);

std::optional<AttrType> attr_type_from_onnx(int code) {
    for (size_t i = 0; i < std::size(kAttrCodes); ++i)
        if (kAttrCodes[i] == code) return static_cast<AttrType>(i);
    return std::nullopt;
}

int attr_type_to_onnx(AttrType t) {
    return kAttrCodes[static_cast<size_t>(t)];
}

[[nodiscard]] std::string quote(const std::string& s) {
    return "'" + s + "'";
}

// ------------------------------------------------------------------------------------
// Reading

onnx::ModelProto parse_model(std::span<const std::byte> bytes, const std::string& what) {
    if (bytes.empty()) throw InputError(cat(what, ": not a valid ONNX model (empty file)"));
    if (bytes.size() > kProtobufLimit)
        throw InputError(cat(what, ": ", bytes.size(),
                             " bytes is over protobuf's 2 GB limit for an ONNX file (large "
                             "weights must be stored as external data)"));
    onnx::ModelProto proto;
    if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw InputError(cat(what, ": not a valid ONNX model (protobuf parse failed)"));
    if (!proto.has_graph()) throw InputError(cat(what, ": not a valid ONNX model (no graph)"));
    return proto;
}

class Reader {
  public:
    Reader(fs::path base_dir, std::string what)
        : base_dir_(base_dir.empty() ? fs::path(".") : std::move(base_dir)),
          what_(std::move(what)) {}

    Model model(onnx::ModelProto& p);
    // A lone TensorProto (ONNX test data files); external data resolves against base_dir.
    Tensor lone_tensor(onnx::TensorProto& p) { return tensor(p, "tensor '" + p.name() + "'"); }

  private:
    template <typename... Args>
    [[noreturn]] void fail(Args&&... args) const {
        throw InputError(cat(what_, ": ", std::forward<Args>(args)...));
    }
    // ONNX `string` fields are UTF-8, and names and text go on into JSON (inspect --json,
    // report.json, the .epk manifest): a field that is not is refused here. `field`
    // (e.g. "node 'relu': output #0") is only built on failure.
    template <typename Field>
    void utf8(const std::string& s, Field&& field) const {
        if (valid_utf8(s)) [[likely]]
            return;
        fail(field(), " ", quote(printable_utf8(s)), " is not valid UTF-8 (byte ",
             invalid_utf8_offset(s), "; ONNX strings must be UTF-8)");
    }
    template <typename Field>
    void utf8(const std::vector<std::string>& list, Field&& field) const {
        for (size_t i = 0; i < list.size(); ++i)
            utf8(list[i], [&] { return cat(field(), " #", i); });
    }

    Tensor tensor(onnx::TensorProto& p, const std::string& label);
    TensorData typed_data(const onnx::TensorProto& p, DType dtype, uint64_t count,
                          const std::string& label) const;
    TensorData external_data(const onnx::TensorProto& p, DType dtype, uint64_t want,
                             const std::string& label);
    fs::path resolve_location(const std::string& location, const std::string& label);
    Graph graph(onnx::GraphProto& p);
    Node node(onnx::NodeProto& p, const std::string& scope);
    Attribute attribute(onnx::AttributeProto& p, const std::string& owner);
    Function function(onnx::FunctionProto& p);
    ValueInfo value_info(const onnx::ValueInfoProto& p) const;
    static ValueType value_type(const onnx::TypeProto& p);

    // Opaque parts keep their bytes; external data inside them is made inline first.
    void inline_external(onnx::TensorProto& p, const std::string& label);
    void inline_external(onnx::SparseTensorProto& p, const std::string& label);
    void inline_external(onnx::GraphProto& g);

    fs::path base_dir_;
    std::optional<fs::path> canonical_base_;
    std::string what_;
    std::map<std::string, std::shared_ptr<const MappedFile>> files_;  // by canonical path
};

// Which of a TensorProto's data fields hold something.
struct DataSources {
    std::vector<std::string_view> names;
    [[nodiscard]] std::string list() const {
        std::string s;
        for (size_t i = 0; i < names.size(); ++i) s += (i ? " and " : "") + std::string(names[i]);
        return s;
    }
};

DataSources data_sources(const onnx::TensorProto& p) {
    DataSources d;
    if (p.has_raw_data()) d.names.push_back("raw_data");
    if (p.float_data_size()) d.names.push_back("float_data");
    if (p.int32_data_size()) d.names.push_back("int32_data");
    if (p.string_data_size()) d.names.push_back("string_data");
    if (p.int64_data_size()) d.names.push_back("int64_data");
    if (p.double_data_size()) d.names.push_back("double_data");
    if (p.uint64_data_size()) d.names.push_back("uint64_data");
    if (p.data_location() == onnx::TensorProto::EXTERNAL) d.names.push_back("external data");
    return d;
}

// The typed field ONNX specifies for a dtype.
std::string_view typed_field_for(DType t) {
    switch (t) {
        case DType::F32:
        case DType::C64:
            return "float_data";
        case DType::F64:
        case DType::C128:
            return "double_data";
        case DType::I64:
            return "int64_data";
        case DType::U32:
        case DType::U64:
            return "uint64_data";
        case DType::String:
            return "string_data";
        default:
            return "int32_data";
    }
}

Tensor Reader::tensor(onnx::TensorProto& p, const std::string& label) {
    Tensor t;
    utf8(p.name(), [] { return "tensor name"; });
    utf8(p.doc_string(), [&] { return cat(label, ": doc_string"); });
    t.name = p.name();
    t.doc_string = p.doc_string();
    auto dtype = dtype_from_onnx(p.data_type());
    if (!dtype) fail(label, ": unknown data_type ", p.data_type());
    t.dtype = *dtype;
    t.shape.assign(p.dims().begin(), p.dims().end());
    for (int64_t d : t.shape)
        if (d < 0) fail(label, ": negative dimension ", d, " in shape ", shape_string(t.shape));
    auto count = checked_element_count(t.shape);
    if (!count) fail(label, ": shape ", shape_string(t.shape), " overflows (too many elements)");
    if (p.has_segment()) fail(label, ": segmented tensors are not supported");
    if (p.data_location() != onnx::TensorProto::EXTERNAL && p.external_data_size() > 0)
        fail(label, ": has external_data entries but data_location is not EXTERNAL");

    DataSources sources = data_sources(p);
    if (sources.names.size() > 1) fail(label, ": stores data in both ", sources.list());

    if (t.dtype == DType::String) {
        if (!sources.names.empty() && sources.names[0] != "string_data")
            fail(label, ": string tensor stores its data in ", sources.names[0],
                 " (expected string_data)");
        if (static_cast<uint64_t>(p.string_data_size()) != *count)
            fail(label, ": string_data has ", p.string_data_size(), " elements, shape ",
                 shape_string(t.shape), " needs ", *count);
        t.strings.assign(p.string_data().begin(), p.string_data().end());
        return t;
    }

    auto want = storage_bytes(t.dtype, *count);
    if (!want) fail(label, ": ", dtype_name(t.dtype), " x ", shape_string(t.shape), " overflows");
    if (sources.names.empty()) {
        if (*want != 0)
            fail(label, ": has no data (", dtype_name(t.dtype), " ", shape_string(t.shape),
                 " needs ", *want, " bytes)");
        t.data = TensorData::owned({});
    } else if (sources.names[0] == "raw_data") {
        if (p.raw_data().size() != *want)
            fail(label, ": raw_data has ", p.raw_data().size(), " bytes, ", dtype_name(t.dtype),
                 " ", shape_string(t.shape), " needs ", *want);
        const auto* b = reinterpret_cast<const std::byte*>(p.raw_data().data());
        t.data = TensorData::owned(std::vector<std::byte>(b, b + p.raw_data().size()));
        std::string().swap(*p.mutable_raw_data());  // the proto's copy is no longer needed
    } else if (sources.names[0] == "external data") {
        t.data = external_data(p, t.dtype, *want, label);
    } else {
        if (sources.names[0] != typed_field_for(t.dtype))
            fail(label, ": ", dtype_name(t.dtype), " tensor stores its data in ", sources.names[0],
                 " (expected ", typed_field_for(t.dtype), " or raw_data)");
        t.data = typed_data(p, t.dtype, *count, label);
        if (t.data.size() != *want)
            throw InternalError(cat(what_, ": ", label, ": typed data decoded to ", t.data.size(),
                                    " bytes, expected ", *want));
    }
    return t;
}

TensorData Reader::typed_data(const onnx::TensorProto& p, DType dtype, uint64_t count,
                              const std::string& label) const {
    auto check_count = [&](uint64_t have, uint64_t need, std::string_view field) {
        if (have != need)
            fail(label, ": ", field, " has ", have, " entries, ", dtype_name(dtype), " ",
                 shape_string(std::vector<int64_t>(p.dims().begin(), p.dims().end())), " needs ",
                 need);
    };
    auto copy_field = [](const auto& field) {
        std::vector<std::byte> bytes(static_cast<size_t>(field.size()) * sizeof(field[0]));
        if (!bytes.empty()) std::memcpy(bytes.data(), field.data(), bytes.size());
        return TensorData::owned(std::move(bytes));
    };
    switch (dtype) {
        case DType::F32:
            check_count(p.float_data_size(), count, "float_data");
            return copy_field(p.float_data());
        case DType::C64:
            check_count(p.float_data_size(), count * 2, "float_data");
            return copy_field(p.float_data());
        case DType::F64:
            check_count(p.double_data_size(), count, "double_data");
            return copy_field(p.double_data());
        case DType::C128:
            check_count(p.double_data_size(), count * 2, "double_data");
            return copy_field(p.double_data());
        case DType::I64:
            check_count(p.int64_data_size(), count, "int64_data");
            return copy_field(p.int64_data());
        case DType::U64:
            check_count(p.uint64_data_size(), count, "uint64_data");
            return copy_field(p.uint64_data());
        case DType::U32: {
            check_count(p.uint64_data_size(), count, "uint64_data");
            std::vector<std::byte> bytes(count * 4);
            for (uint64_t i = 0; i < count; ++i) {
                uint64_t v = p.uint64_data(static_cast<int>(i));
                if (v > UINT32_MAX) fail(label, ": uint64_data[", i, "] = ", v, " is not a u32");
                auto u = static_cast<uint32_t>(v);
                std::memcpy(bytes.data() + i * 4, &u, 4);
            }
            return TensorData::owned(std::move(bytes));
        }
        case DType::I32:
            check_count(p.int32_data_size(), count, "int32_data");
            return copy_field(p.int32_data());
        case DType::I4:
        case DType::U4:
        case DType::F4E2M1:
        case DType::I2:
        case DType::U2: {
            // One entry per byte: two nibbles (or four 2-bit fields), the first element in the
            // lowest bits.
            uint64_t packed = *storage_bytes(dtype, count);
            check_count(p.int32_data_size(), packed, "int32_data");
            std::vector<std::byte> bytes(packed);
            for (uint64_t i = 0; i < packed; ++i) {
                int32_t v = p.int32_data(static_cast<int>(i));
                if (v < -128 || v > 255)
                    fail(label, ": int32_data[", i, "] = ", v, " is not a packed byte");
                bytes[i] = static_cast<std::byte>(v & 0xFF);
            }
            return TensorData::owned(std::move(bytes));
        }
        default:
            break;
    }
    // One int32 entry per element of 1 or 2 bytes: bool, i8/u8, i16/u16, f16/bf16, f8.
    int bits = traits(dtype).bits;
    if (bits != 8 && bits != 16)
        throw InternalError(cat(what_, ": ", label, ": no typed decoding for ", dtype_name(dtype)));
    check_count(p.int32_data_size(), count, "int32_data");
    size_t width = static_cast<size_t>(bits / 8);
    // Accept both the signed and the unsigned reading of the bits (writers differ).
    int64_t lo = -(int64_t{1} << (bits - 1)), hi = (int64_t{1} << bits) - 1;
    std::vector<std::byte> bytes(count * width);
    for (uint64_t i = 0; i < count; ++i) {
        int32_t v = p.int32_data(static_cast<int>(i));
        if (dtype == DType::Bool) {
            bytes[i] = std::byte{v != 0};
            continue;
        }
        if (v < lo || v > hi)
            fail(label, ": int32_data[", i, "] = ", v, " does not fit ", dtype_name(dtype));
        auto u = static_cast<uint16_t>(v);
        std::memcpy(bytes.data() + i * width, &u, width);  // little-endian low bytes
    }
    return TensorData::owned(std::move(bytes));
}

std::optional<uint64_t> parse_u64(const std::string& s) {
    uint64_t v = 0;
    if (s.empty()) return std::nullopt;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

fs::path Reader::resolve_location(const std::string& location, const std::string& label) {
    std::string shown = quote(location);
    if (location.empty()) fail(label, ": external data has an empty location");
    if (location.find('\0') != std::string::npos)
        fail(label, ": external data location ", shown, " contains a NUL byte");
    fs::path loc(location);
    if (loc.has_root_directory() || loc.has_root_name() || loc.is_absolute())
        fail(label, ": external data location ", shown,
             " is an absolute path (it must be relative to the model's directory)");
    for (const auto& part : loc)
        if (part == "..")
            fail(label, ": external data location ", shown,
                 " contains '..' (it must stay inside the model's directory)");
    if (!canonical_base_) {
        std::error_code ec;
        canonical_base_ = fs::canonical(base_dir_, ec);
        if (ec)
            fail(label, ": cannot resolve the model's directory ", quote(base_dir_.string()), ": ",
                 ec.message());
    }
    std::error_code ec;
    fs::path real = fs::canonical(*canonical_base_ / loc, ec);
    if (ec)
        fail(label, ": external data file ", shown, " not found in ",
             quote(canonical_base_->string()), " (", ec.message(), ")");
    auto [base_end, real_it] =
        std::mismatch(canonical_base_->begin(), canonical_base_->end(), real.begin(), real.end());
    if (base_end != canonical_base_->end())
        fail(label, ": external data location ", shown, " resolves to ", quote(real.string()),
             ", outside the model's directory ", quote(canonical_base_->string()));
    if (!fs::is_regular_file(real, ec))
        fail(label, ": external data location ", shown, " is not a regular file");
    return real;
}

TensorData Reader::external_data(const onnx::TensorProto& p, DType dtype, uint64_t want,
                                 const std::string& label) {
    std::optional<std::string> location;
    std::optional<uint64_t> offset, length;
    for (const auto& entry : p.external_data()) {
        const std::string& key = entry.key();
        if (key == "location") {
            location = entry.value();
        } else if (key == "offset" || key == "length") {
            auto v = parse_u64(entry.value());
            if (!v)
                fail(label, ": external data ", key, " ", quote(entry.value()),
                     " is not a non-negative integer");
            (key == "offset" ? offset : length) = *v;
        }  // "checksum" and unknown keys are not needed to read the bytes
    }
    if (!location) fail(label, ": external data has no location");
    fs::path real = resolve_location(*location, label);
    std::string shown = quote(*location);

    auto& file = files_[real.string()];
    if (!file) {
        try {
            file = MappedFile::open(real);
        } catch (const Error& e) {
            fail(label, ": external data ", shown, ": ", e.what());
        }
    }
    uint64_t size = file->size();
    uint64_t begin = offset.value_or(0);
    uint64_t len = length.value_or(want);
    if (len != want)
        fail(label, ": external data length ", len, " does not match ", dtype_name(dtype), " ",
             shape_string(std::vector<int64_t>(p.dims().begin(), p.dims().end())), " (", want,
             " bytes)");
    auto end = checked_add(begin, len);
    if (!end) fail(label, ": external data offset ", begin, " + length ", len, " overflows");
    if (begin > size)
        fail(label, ": external data offset ", begin, " is past the end of ", shown, " (", size,
             " bytes)");
    if (*end > size)
        fail(label, ": external data range [", begin, ", ", *end, ") is past the end of ", shown,
             " (", size, " bytes)");

    auto off = static_cast<size_t>(begin), n = static_cast<size_t>(len);
    size_t align = std::clamp<size_t>(static_cast<size_t>(traits(dtype).bits / 8), 1, 8);
    const std::byte* ptr = file->bytes().data() + off;
    if (reinterpret_cast<uintptr_t>(ptr) % align == 0) return TensorData::view(file, off, n);
    return TensorData::owned(std::vector<std::byte>(ptr, ptr + n));  // misaligned: copy
}

void Reader::inline_external(onnx::TensorProto& p, const std::string& label) {
    if (p.data_location() != onnx::TensorProto::EXTERNAL) return;
    Tensor t = tensor(p, label);
    p.clear_external_data();
    p.clear_data_location();
    p.set_raw_data(reinterpret_cast<const char*>(t.data.bytes().data()), t.data.size());
}

void Reader::inline_external(onnx::SparseTensorProto& p, const std::string& label) {
    if (p.has_values()) inline_external(*p.mutable_values(), label + " (values)");
    if (p.has_indices()) inline_external(*p.mutable_indices(), label + " (indices)");
}

void Reader::inline_external(onnx::GraphProto& g) {
    for (auto& t : *g.mutable_initializer()) inline_external(t, cat("tensor ", quote(t.name())));
    for (auto& s : *g.mutable_sparse_initializer())
        inline_external(s, cat("sparse tensor ", quote(s.values().name())));
    for (auto& n : *g.mutable_node()) {
        for (auto& a : *n.mutable_attribute()) {
            std::string label = cat("attribute ", quote(a.name()), " of node ", quote(n.name()));
            if (a.has_t()) inline_external(*a.mutable_t(), label);
            for (auto& t : *a.mutable_tensors()) inline_external(t, label);
            if (a.has_sparse_tensor()) inline_external(*a.mutable_sparse_tensor(), label);
            for (auto& s : *a.mutable_sparse_tensors()) inline_external(s, label);
            if (a.has_g()) inline_external(*a.mutable_g());
            for (auto& sub : *a.mutable_graphs()) inline_external(sub);
        }
    }
}

ValueType Reader::value_type(const onnx::TypeProto& p) {
    ValueType v;
    if (p.value_case() == onnx::TypeProto::kTensorType) {
        const auto& tt = p.tensor_type();
        std::optional<DType> elem = DType::Undefined;
        if (tt.elem_type() != 0) elem = dtype_from_onnx(tt.elem_type());
        if (elem) {  // an element type we do not know is kept opaque below
            v.elem = *elem;
            v.denotation = p.denotation();
            if (tt.has_shape()) {
                std::vector<Dim> dims;
                for (const auto& d : tt.shape().dim()) {
                    Dim dim;
                    if (d.value_case() == onnx::TensorShapeProto::Dimension::kDimValue)
                        dim.value = d.dim_value();
                    else if (d.value_case() == onnx::TensorShapeProto::Dimension::kDimParam)
                        dim.param = d.dim_param();
                    dim.denotation = d.denotation();
                    dims.push_back(std::move(dim));
                }
                v.shape = std::move(dims);
            }
            return v;
        }
    }
    v.is_tensor = false;
    v.opaque = p.SerializeAsString();
    return v;
}

ValueInfo Reader::value_info(const onnx::ValueInfoProto& p) const {
    ValueInfo v;
    utf8(p.name(), [] { return "value name"; });
    auto field = [&p](const char* what) {
        return [&p, what] { return cat("value ", quote(p.name()), ": ", what); };
    };
    utf8(p.doc_string(), field("doc_string"));
    v.name = p.name();
    v.doc_string = p.doc_string();
    if (p.has_type()) {
        v.type = value_type(p.type());
        if (v.type->is_tensor) {
            utf8(v.type->denotation, field("denotation"));
            if (v.type->shape)
                for (const auto& d : *v.type->shape) {
                    utf8(d.param, field("dim_param"));
                    utf8(d.denotation, field("dimension denotation"));
                }
        }
    }
    return v;
}

Attribute Reader::attribute(onnx::AttributeProto& p, const std::string& owner) {
    Attribute a;
    utf8(p.name(), [&] { return cat("attribute name of ", owner); });
    a.name = p.name();
    a.ref_attr_name = p.ref_attr_name();
    a.doc_string = p.doc_string();
    std::string label = cat("attribute ", quote(a.name), " of ", owner);
    utf8(a.ref_attr_name, [&] { return cat(label, ": ref_attr_name"); });
    utf8(a.doc_string, [&] { return cat(label, ": doc_string"); });
    auto type = attr_type_from_onnx(p.type());
    if (!type) fail(label, ": unknown attribute type ", static_cast<int>(p.type()));
    a.type = *type;
    if (a.type == AttrType::Undefined && a.ref_attr_name.empty()) {
        // Old files (IR version 1) have no type: it is whichever field is set.
        if (p.has_f())
            a.type = AttrType::Float;
        else if (p.has_i())
            a.type = AttrType::Int;
        else if (p.has_s())
            a.type = AttrType::String;
        else if (p.has_t())
            a.type = AttrType::Tensor;
        else if (p.has_g())
            a.type = AttrType::Graph;
        else if (p.has_sparse_tensor())
            a.type = AttrType::SparseTensor;
        else if (p.has_tp())
            a.type = AttrType::TypeProto;
        else if (p.floats_size())
            a.type = AttrType::Floats;
        else if (p.ints_size())
            a.type = AttrType::Ints;
        else if (p.strings_size())
            a.type = AttrType::Strings;
        else if (p.tensors_size())
            a.type = AttrType::Tensors;
        else if (p.graphs_size())
            a.type = AttrType::Graphs;
        else if (p.sparse_tensors_size())
            a.type = AttrType::SparseTensors;
        else if (p.type_protos_size())
            a.type = AttrType::TypeProtos;
    }
    // A reference to the calling node's attribute (inside a function) carries no value.
    bool need_value = a.ref_attr_name.empty();
    auto tensor_label = [&](const onnx::TensorProto& t) {
        return t.name().empty() ? cat("tensor in ", label)
                                : cat("tensor ", quote(t.name()), " (", label, ")");
    };
    switch (a.type) {
        case AttrType::Undefined:
            break;
        case AttrType::Float:
            a.f = p.f();
            break;
        case AttrType::Int:
            a.i = p.i();
            break;
        case AttrType::String:
            a.s = p.s();
            break;
        case AttrType::Tensor:
            if (p.has_t())
                a.tensors.push_back(tensor(*p.mutable_t(), tensor_label(p.t())));
            else if (need_value)
                fail(label, ": type TENSOR but no tensor");
            break;
        case AttrType::Graph:
            if (p.has_g())
                a.graphs.push_back(graph(*p.mutable_g()));
            else if (need_value)
                fail(label, ": type GRAPH but no graph");
            break;
        case AttrType::SparseTensor:
            if (p.has_sparse_tensor()) {
                inline_external(*p.mutable_sparse_tensor(), label);
                a.opaque.push_back(p.sparse_tensor().SerializeAsString());
            } else if (need_value) {
                fail(label, ": type SPARSE_TENSOR but no sparse tensor");
            }
            break;
        case AttrType::TypeProto:
            if (p.has_tp())
                a.opaque.push_back(p.tp().SerializeAsString());
            else if (need_value)
                fail(label, ": type TYPE_PROTO but no type");
            break;
        case AttrType::Floats:
            a.floats.assign(p.floats().begin(), p.floats().end());
            break;
        case AttrType::Ints:
            a.ints.assign(p.ints().begin(), p.ints().end());
            break;
        case AttrType::Strings:
            a.strings.assign(p.strings().begin(), p.strings().end());
            break;
        case AttrType::Tensors:
            for (auto& t : *p.mutable_tensors()) a.tensors.push_back(tensor(t, tensor_label(t)));
            break;
        case AttrType::Graphs:
            for (auto& g : *p.mutable_graphs()) a.graphs.push_back(graph(g));
            break;
        case AttrType::SparseTensors:
            for (auto& s : *p.mutable_sparse_tensors()) {
                inline_external(s, label);
                a.opaque.push_back(s.SerializeAsString());
            }
            break;
        case AttrType::TypeProtos:
            for (const auto& t : p.type_protos()) a.opaque.push_back(t.SerializeAsString());
            break;
    }
    return a;
}

Node Reader::node(onnx::NodeProto& p, const std::string& scope) {
    Node n;
    utf8(p.name(), [&] { return cat("node name", scope); });
    utf8(p.op_type(), [&] { return cat("op_type of node ", quote(p.name()), scope); });
    utf8(p.domain(), [&] { return cat("domain of node ", quote(p.name()), scope); });
    n.name = p.name();
    n.op_type = p.op_type();
    n.domain = p.domain();
    n.inputs.assign(p.input().begin(), p.input().end());
    n.outputs.assign(p.output().begin(), p.output().end());
    n.doc_string = p.doc_string();
    std::string owner = cat("node ", quote(n.label()), scope);
    utf8(n.inputs, [&] { return cat(owner, ": input"); });
    utf8(n.outputs, [&] { return cat(owner, ": output"); });
    utf8(n.doc_string, [&] { return cat(owner, ": doc_string"); });
    for (auto& a : *p.mutable_attribute()) n.attributes.push_back(attribute(a, owner));
    return n;
}

Graph Reader::graph(onnx::GraphProto& p) {
    Graph g;
    utf8(p.name(), [] { return "graph name"; });
    utf8(p.doc_string(), [&] { return cat("graph ", quote(p.name()), ": doc_string"); });
    g.name = p.name();
    g.doc_string = p.doc_string();
    for (int i = 0; i < p.initializer_size(); ++i) {
        auto& t = *p.mutable_initializer(i);
        if (t.name().empty()) fail("initializer #", i, " of graph ", quote(g.name), " has no name");
        g.initializers.push_back(tensor(t, cat("tensor ", quote(t.name()))));
    }
    for (auto& s : *p.mutable_sparse_initializer()) {
        inline_external(s, cat("sparse tensor ", quote(s.values().name())));
        g.opaque_sparse_initializers.push_back(s.SerializeAsString());
    }
    for (auto& n : *p.mutable_node()) g.nodes.push_back(node(n, ""));
    for (const auto& v : p.input()) g.inputs.push_back(value_info(v));
    for (const auto& v : p.output()) g.outputs.push_back(value_info(v));
    for (const auto& v : p.value_info()) g.value_info.push_back(value_info(v));
    for (const auto& q : p.quantization_annotation())
        g.opaque_quantization_annotation.push_back(q.SerializeAsString());
    return g;
}

Function Reader::function(onnx::FunctionProto& p) {
    Function f;
    f.name = p.name();
    f.domain = p.domain();
    f.inputs.assign(p.input().begin(), p.input().end());
    f.outputs.assign(p.output().begin(), p.output().end());
    f.attribute_names.assign(p.attribute().begin(), p.attribute().end());
    f.doc_string = p.doc_string();
    utf8(f.name, [] { return "function name"; });
    std::string scope = cat(" in function ", quote(f.name));
    utf8(f.domain, [&] { return cat("function ", quote(f.name), ": domain"); });
    utf8(f.inputs, [&] { return cat("function ", quote(f.name), ": input"); });
    utf8(f.outputs, [&] { return cat("function ", quote(f.name), ": output"); });
    utf8(f.attribute_names, [&] { return cat("function ", quote(f.name), ": attribute"); });
    utf8(f.doc_string, [&] { return cat("function ", quote(f.name), ": doc_string"); });
    for (auto& n : *p.mutable_node()) f.nodes.push_back(node(n, scope));
    for (const auto& o : p.opset_import()) {
        utf8(o.domain(), [&] { return cat("function ", quote(f.name), ": opset_import domain"); });
        f.opset_imports.push_back({o.domain(), o.version()});
    }
    const auto& unknown = p.GetReflection()->GetUnknownFields(p);
    for (int i = 0; i < unknown.field_count(); ++i) {
        const auto& field = unknown.field(i);
        if (field.number() != kFunctionAttributeProtoField ||
            field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
            continue;
        onnx::AttributeProto ap;
        if (!ap.ParseFromString(field.length_delimited()))
            fail("function ", quote(f.name), ": an attribute default does not parse");
        f.attribute_defaults.push_back(attribute(ap, cat("function ", quote(f.name))));
    }
    return f;
}

Model Reader::model(onnx::ModelProto& p) {
    Model m;
    m.format = SourceFormat::Onnx;
    m.ir_version = p.ir_version();
    for (const auto& o : p.opset_import()) {
        utf8(o.domain(), [] { return "opset_import domain"; });
        m.opset_imports.push_back({o.domain(), o.version()});
    }
    utf8(p.producer_name(), [] { return "producer_name"; });
    utf8(p.producer_version(), [] { return "producer_version"; });
    utf8(p.domain(), [] { return "model domain"; });
    utf8(p.doc_string(), [] { return "model doc_string"; });
    m.producer_name = p.producer_name();
    m.producer_version = p.producer_version();
    m.domain = p.domain();
    m.model_version = p.model_version();
    m.doc_string = p.doc_string();
    for (const auto& kv : p.metadata_props()) {
        utf8(kv.key(), [] { return "metadata_props key"; });
        utf8(kv.value(), [&] { return cat("metadata_props ", quote(kv.key()), ": value"); });
        m.metadata.emplace_back(kv.key(), kv.value());
    }
    m.graph = graph(*p.mutable_graph());
    for (auto& f : *p.mutable_functions()) m.functions.push_back(function(f));
    for (auto& t : *p.mutable_training_info()) {
        if (t.has_initialization()) inline_external(*t.mutable_initialization());
        if (t.has_algorithm()) inline_external(*t.mutable_algorithm());
        m.opaque_training_info.push_back(t.SerializeAsString());
    }
    return m;
}

// ------------------------------------------------------------------------------------
// Writing

template <typename Fn>
void for_each_tensor_in(const std::vector<Attribute>& attrs, Fn& fn);

template <typename Fn>
void for_each_tensor_in(const Graph& g, Fn& fn) {
    for (const auto& t : g.initializers) fn(t);
    for (const auto& n : g.nodes) for_each_tensor_in(n.attributes, fn);
}

template <typename Fn>
void for_each_tensor_in(const std::vector<Attribute>& attrs, Fn& fn) {
    for (const auto& a : attrs) {
        for (const auto& t : a.tensors) fn(t);
        for (const auto& sub : a.graphs) for_each_tensor_in(sub, fn);
    }
}

struct ExternalWrite {
    const TensorData* data;
    uint64_t offset;
};

class Writer {
  public:
    Writer(bool external, uint64_t threshold, std::string location)
        : external_(external), threshold_(threshold), location_(std::move(location)) {}

    void model(const Model& m, onnx::ModelProto& p);
    [[nodiscard]] const std::vector<ExternalWrite>& writes() const { return writes_; }

  private:
    void tensor(const Tensor& t, onnx::TensorProto& p);
    void graph(const Graph& g, onnx::GraphProto& p);
    void node(const Node& n, onnx::NodeProto& p);
    void attribute(const Attribute& a, onnx::AttributeProto& p);
    static void value_info(const ValueInfo& v, onnx::ValueInfoProto& p);
    static void value_type(const ValueType& v, onnx::TypeProto& p);

    bool external_;
    uint64_t threshold_;
    std::string location_;
    uint64_t data_size_ = 0;
    std::vector<ExternalWrite> writes_;
};

template <typename Proto>
void parse_opaque(Proto& p, const std::string& bytes, std::string_view what) {
    if (!p.ParseFromString(bytes))
        throw InternalError(cat("ONNX writer: opaque ", what, " bytes do not parse"));
}

void Writer::tensor(const Tensor& t, onnx::TensorProto& p) {
    t.check_consistent();
    int code = traits(t.dtype).onnx_code;
    if (code == 0)
        throw InputError(cat("tensor ", quote(t.name), ": dtype ", dtype_name(t.dtype),
                             " has no ONNX equivalent"));
    for (int64_t d : t.shape) p.add_dims(d);
    p.set_data_type(code);
    if (!t.name.empty()) p.set_name(t.name);
    if (!t.doc_string.empty()) p.set_doc_string(t.doc_string);
    if (t.dtype == DType::String) {
        for (const auto& s : t.strings) p.add_string_data(s);
        return;
    }
    uint64_t size = t.data.size();
    if (external_ && size > 0 && size >= threshold_) {
        uint64_t offset =
            (data_size_ + kExternalAlignment - 1) / kExternalAlignment * kExternalAlignment;
        writes_.push_back({&t.data, offset});
        data_size_ = offset + size;
        p.set_data_location(onnx::TensorProto::EXTERNAL);
        auto add = [&](const char* key, std::string value) {
            auto* e = p.add_external_data();
            e->set_key(key);
            e->set_value(std::move(value));
        };
        add("location", location_);
        add("offset", std::to_string(offset));
        add("length", std::to_string(size));
        return;
    }
    p.set_raw_data(reinterpret_cast<const char*>(t.data.bytes().data()), size);
    if (t.data.is_view()) t.data.file()->release(t.data.file_offset(), size);  // copied now
}

void Writer::value_type(const ValueType& v, onnx::TypeProto& p) {
    if (!v.is_tensor) {
        parse_opaque(p, v.opaque, "TypeProto");
        return;
    }
    auto* tt = p.mutable_tensor_type();
    if (v.elem != DType::Undefined) tt->set_elem_type(traits(v.elem).onnx_code);
    if (v.shape) {
        auto* shape = tt->mutable_shape();
        for (const auto& d : *v.shape) {
            auto* dim = shape->add_dim();
            if (d.value)
                dim->set_dim_value(*d.value);
            else if (!d.param.empty())
                dim->set_dim_param(d.param);
            if (!d.denotation.empty()) dim->set_denotation(d.denotation);
        }
    }
    if (!v.denotation.empty()) p.set_denotation(v.denotation);
}

void Writer::value_info(const ValueInfo& v, onnx::ValueInfoProto& p) {
    p.set_name(v.name);
    if (v.type) value_type(*v.type, *p.mutable_type());
    if (!v.doc_string.empty()) p.set_doc_string(v.doc_string);
}

void Writer::attribute(const Attribute& a, onnx::AttributeProto& p) {
    p.set_name(a.name);
    if (!a.ref_attr_name.empty()) p.set_ref_attr_name(a.ref_attr_name);
    if (!a.doc_string.empty()) p.set_doc_string(a.doc_string);
    if (a.type != AttrType::Undefined)
        p.set_type(static_cast<onnx::AttributeProto::AttributeType>(attr_type_to_onnx(a.type)));
    bool is_ref = !a.ref_attr_name.empty();  // references carry a value only if one was set
    auto one = [&](size_t n, std::string_view kind) {
        if (n > 1)
            throw InternalError(
                cat("attribute ", quote(a.name), ": ", n, " values for type ", kind));
        return n == 1;
    };
    switch (a.type) {
        case AttrType::Undefined:
            break;
        case AttrType::Float:
            if (!is_ref || a.f != 0.0f) p.set_f(a.f);
            break;
        case AttrType::Int:
            if (!is_ref || a.i != 0) p.set_i(a.i);
            break;
        case AttrType::String:
            if (!is_ref || !a.s.empty()) p.set_s(a.s);
            break;
        case AttrType::Tensor:
            if (one(a.tensors.size(), "TENSOR")) tensor(a.tensors[0], *p.mutable_t());
            break;
        case AttrType::Graph:
            if (one(a.graphs.size(), "GRAPH")) graph(a.graphs[0], *p.mutable_g());
            break;
        case AttrType::SparseTensor:
            if (one(a.opaque.size(), "SPARSE_TENSOR"))
                parse_opaque(*p.mutable_sparse_tensor(), a.opaque[0], "SparseTensorProto");
            break;
        case AttrType::TypeProto:
            if (one(a.opaque.size(), "TYPE_PROTO"))
                parse_opaque(*p.mutable_tp(), a.opaque[0], "TypeProto");
            break;
        case AttrType::Floats:
            for (float f : a.floats) p.add_floats(f);
            break;
        case AttrType::Ints:
            for (int64_t i : a.ints) p.add_ints(i);
            break;
        case AttrType::Strings:
            for (const auto& s : a.strings) p.add_strings(s);
            break;
        case AttrType::Tensors:
            for (const auto& t : a.tensors) tensor(t, *p.add_tensors());
            break;
        case AttrType::Graphs:
            for (const auto& g : a.graphs) graph(g, *p.add_graphs());
            break;
        case AttrType::SparseTensors:
            for (const auto& s : a.opaque)
                parse_opaque(*p.add_sparse_tensors(), s, "SparseTensorProto");
            break;
        case AttrType::TypeProtos:
            for (const auto& s : a.opaque) parse_opaque(*p.add_type_protos(), s, "TypeProto");
            break;
    }
}

void Writer::node(const Node& n, onnx::NodeProto& p) {
    for (const auto& i : n.inputs) p.add_input(i);
    for (const auto& o : n.outputs) p.add_output(o);
    if (!n.name.empty()) p.set_name(n.name);
    p.set_op_type(n.op_type);
    if (!n.domain.empty()) p.set_domain(n.domain);
    for (const auto& a : n.attributes) attribute(a, *p.add_attribute());
    if (!n.doc_string.empty()) p.set_doc_string(n.doc_string);
}

void Writer::graph(const Graph& g, onnx::GraphProto& p) {
    // Initializers first, then node attribute tensors: the data file's order.
    for (const auto& t : g.initializers) tensor(t, *p.add_initializer());
    for (const auto& n : g.nodes) node(n, *p.add_node());
    if (!g.name.empty()) p.set_name(g.name);
    for (const auto& s : g.opaque_sparse_initializers)
        parse_opaque(*p.add_sparse_initializer(), s, "SparseTensorProto");
    if (!g.doc_string.empty()) p.set_doc_string(g.doc_string);
    for (const auto& v : g.inputs) value_info(v, *p.add_input());
    for (const auto& v : g.outputs) value_info(v, *p.add_output());
    for (const auto& v : g.value_info) value_info(v, *p.add_value_info());
    for (const auto& q : g.opaque_quantization_annotation)
        parse_opaque(*p.add_quantization_annotation(), q, "TensorAnnotation");
}

void Writer::model(const Model& m, onnx::ModelProto& p) {
    if (m.ir_version != 0) p.set_ir_version(m.ir_version);
    for (const auto& o : m.opset_imports) {
        auto* op = p.add_opset_import();
        op->set_domain(o.domain);
        op->set_version(o.version);
    }
    if (!m.producer_name.empty()) p.set_producer_name(m.producer_name);
    if (!m.producer_version.empty()) p.set_producer_version(m.producer_version);
    if (!m.domain.empty()) p.set_domain(m.domain);
    if (m.model_version != 0) p.set_model_version(m.model_version);
    if (!m.doc_string.empty()) p.set_doc_string(m.doc_string);
    graph(m.graph, *p.mutable_graph());
    for (const auto& [key, value] : m.metadata) {
        auto* kv = p.add_metadata_props();
        kv->set_key(key);
        kv->set_value(value);
    }
    for (const auto& t : m.opaque_training_info)
        parse_opaque(*p.add_training_info(), t, "TrainingInfoProto");
    for (const auto& f : m.functions) {
        auto* fp = p.add_functions();
        fp->set_name(f.name);
        for (const auto& i : f.inputs) fp->add_input(i);
        for (const auto& o : f.outputs) fp->add_output(o);
        for (const auto& a : f.attribute_names) fp->add_attribute(a);
        for (const auto& n : f.nodes) node(n, *fp->add_node());
        if (!f.doc_string.empty()) fp->set_doc_string(f.doc_string);
        for (const auto& o : f.opset_imports) {
            auto* op = fp->add_opset_import();
            op->set_domain(o.domain);
            op->set_version(o.version);
        }
        if (!f.domain.empty()) fp->set_domain(f.domain);
        auto* unknown = fp->GetReflection()->MutableUnknownFields(fp);
        for (const auto& a : f.attribute_defaults) {
            onnx::AttributeProto ap;
            attribute(a, ap);
            unknown->AddLengthDelimited(kFunctionAttributeProtoField, ap.SerializeAsString());
        }
    }
}

// Streams a tensor's bytes; pages of a mapped source are released after each chunk so
// resident memory stays near one chunk however large the tensor is.
void stream_tensor(const TensorData& data, ByteSink& out) {
    auto bytes = data.bytes();
    for (size_t off = 0; off < bytes.size(); off += kStreamChunk) {
        size_t n = std::min(kStreamChunk, bytes.size() - off);
        out.write(bytes.subspan(off, n));
        if (data.is_view()) data.file()->release(data.file_offset() + off, n);
    }
}

// Lets protobuf serialize straight into a ByteSink. Exceptions from the sink are kept
// and re-thrown after protobuf returns, so none unwinds through protobuf's code.
class SinkOutputStream final : public google::protobuf::io::CopyingOutputStream {
  public:
    explicit SinkOutputStream(ByteSink& sink) : sink_(sink) {}
    bool Write(const void* buffer, int size) override {
        try {
            sink_.write({static_cast<const std::byte*>(buffer), static_cast<size_t>(size)});
            return true;
        } catch (...) {
            error_ = std::current_exception();
            return false;
        }
    }
    void rethrow_if_failed() const {
        if (error_) std::rethrow_exception(error_);
    }

  private:
    ByteSink& sink_;
    std::exception_ptr error_;
};

void serialize(const onnx::ModelProto& proto, ByteSink& sink, const fs::path& path) {
    SinkOutputStream stream(sink);
    bool ok;
    {
        google::protobuf::io::CopyingOutputStreamAdaptor adaptor(&stream);
        {
            google::protobuf::io::CodedOutputStream coded(&adaptor);
            coded.SetSerializationDeterministic(true);
            ok = proto.SerializeToCodedStream(&coded) && !coded.HadError();
        }
        ok = adaptor.Flush() && ok;
    }
    stream.rethrow_if_failed();
    if (!ok) throw InternalError(cat(path.string(), ": protobuf serialization failed"));
}

}  // namespace

Model read_onnx_bytes(std::span<const std::byte> bytes, const std::filesystem::path& base_dir,
                      const std::string& what) {
    onnx::ModelProto proto = parse_model(bytes, what);
    return Reader(base_dir, what).model(proto);
}

Model read_onnx(const std::filesystem::path& path, const OnnxReadOptions& options,
                int64_t* source_opset) {
    onnx::ModelProto proto;
    {
        auto file = MappedFile::open(path);
        proto = parse_model(file->bytes(), path.string());
    }  // the model file's pages are not needed once parsed
    if (source_opset) *source_opset = default_opset(proto);
    if (options.min_opset > 0) raise_default_opset(proto, options.min_opset, path.string());
    return Reader(path.parent_path(), path.string()).model(proto);
}

Tensor read_onnx_tensor(const std::filesystem::path& path) {
    auto file = MappedFile::open(path);
    auto bytes = file->bytes();
    onnx::TensorProto proto;
    if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
        !proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw InputError(
            cat(path.string(), ": not a valid ONNX TensorProto (protobuf parse failed)"));
    return Reader(path.parent_path(), path.string()).lone_tensor(proto);
}

void write_onnx(const Model& model, const std::filesystem::path& path,
                const OnnxWriteOptions& options) {
    const std::string what = path.string();
    if (has_encoded_tensors(model)) {
        if (options.quantized.empty() || options.quantized == "none") {
            std::string first;
            for_each_graph(model.graph, [&](const Graph& g) {
                for (const auto& t : g.initializers)
                    if (first.empty() && t.is_encoded())
                        first =
                            cat("tensor '", t.name, "' is ", encoding_name(t.encoding), "-encoded");
            });
            throw InputError(
                cat(what, ": ", first, ": choose onnx.quantized = matmulnbits or qdq"));
        }
        Model plain;
        try {
            plain = export_quantized_onnx(model, options.quantized);
        } catch (const InputError& e) {
            throw InputError(cat(what, ": ", e.what()));
        }
        OnnxWriteOptions rest = options;
        rest.quantized.clear();
        return write_onnx(plain, path, rest);
    }
    uint64_t total = 0;
    auto add = [&](const Tensor& t) { total += t.data.size(); };
    for_each_tensor_in(model.graph, add);
    for (const auto& f : model.functions) {
        for (const auto& n : f.nodes) for_each_tensor_in(n.attributes, add);
        for_each_tensor_in(f.attribute_defaults, add);
    }
    bool external = options.external == ExternalData::Always ||
                    (options.external == ExternalData::Auto && total > kAutoExternalBytes);
    if (!external && total > kProtobufLimit)
        throw InputError(cat(what, ": the model holds ", total,
                             " bytes of tensor data, over protobuf's 2 GB limit for one file; "
                             "write it with external data"));

    std::string location =
        options.external_file.empty() ? path.filename().string() + ".data" : options.external_file;
    if (external) {
        fs::path loc(location);
        if (location.empty() || loc.has_parent_path() || loc.is_absolute() || location == "." ||
            location == "..")
            throw InputError(cat(what, ": external data file ", quote(location),
                                 " must be a plain file name (it is written next to the model)"));
        if (location == path.filename().string())
            throw InputError(cat(what, ": external data file ", quote(location),
                                 " would overwrite the model itself"));
    }

    onnx::ModelProto proto;
    Writer writer(external, options.external_threshold, location);
    try {
        writer.model(model, proto);
    } catch (const InputError& e) {
        throw InputError(cat(what, ": ", e.what()));
    } catch (const InternalError& e) {
        throw InternalError(cat(what, ": ", e.what()));
    }
    size_t proto_size = proto.ByteSizeLong();
    if (proto_size > kProtobufLimit)
        throw InputError(cat(what, ": the serialized model would be ", proto_size,
                             " bytes, over protobuf's 2 GB limit; write it with external data",
                             external ? " and a lower external threshold" : ""));

    std::optional<OutputFile> data_out;
    if (!writer.writes().empty()) {
        data_out.emplace(path.parent_path() / location);
        for (const auto& w : writer.writes()) {
            data_out->write_zeros(static_cast<size_t>(w.offset - data_out->position()));
            stream_tensor(*w.data, *data_out);
        }
    }
    OutputFile model_out(path);
    serialize(proto, model_out, path);
    if (data_out) data_out->commit();
    model_out.commit();
}

}  // namespace ep
