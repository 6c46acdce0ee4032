#include "engine/safetensors.h"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

using ::adak::testing::IsOk;
using ::adak::testing::ReadFile;
using ::adak::testing::StatusIs;
using ::adak::testing::TempDir;
using ::adak::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A safetensors file from a raw header text and data section.
std::string RawFile(const std::string& header, const std::string& data, uint64_t declared_length = UINT64_MAX) {
  const uint64_t length = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out + header + data;
}

std::span<const std::byte> Bytes(const void* p, size_t n) { return {static_cast<const std::byte*>(p), n}; }

TEST(SafetensorsTest, WriteThenOpenRoundTrips) {
  TempDir dir;
  const float f32[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t bf16[4] = {F32ToBf16(1.0f), F32ToBf16(-2.0f), F32ToBf16(0.5f), F32ToBf16(3.0f)};
  const int64_t i64[1] = {42};
  const std::vector<TensorToWrite> tensors = {
      {"a.weight", DType::kF32, {2, 3}, Bytes(f32, sizeof(f32))},
      {"b.weight", DType::kBF16, {4}, Bytes(bf16, sizeof(bf16))},
      {"c.count", DType::kI64, {1}, Bytes(i64, sizeof(i64))},
      {"empty", DType::kF16, {0, 5}, {}},
  };
  const auto path = dir.path() / "x.safetensors";
  ASSERT_THAT(WriteSafetensors(path, tensors, {{"format", "pt"}}), IsOk());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "x.safetensors.partial"));

  const std::string raw = ReadFile(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ(header_len % 8, 0u) << "header must be padded to 8 bytes";
  EXPECT_EQ(raw.size(), 8 + header_len + sizeof(f32) + sizeof(bf16) + sizeof(i64));

  auto file = SafetensorsFile::Open(path);
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->tensors().size(), 4u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  const TensorView* a = (*file)->Find("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_THAT(a->shape, ElementsAre(2, 3));
  EXPECT_EQ(a->name, "a.weight");
  // The mapped bytes are the written bytes (bit for bit, not float equality).
  EXPECT_EQ(std::memcmp(a->data, f32, sizeof(f32)), 0);  // NOLINT(bugprone-suspicious-memory-comparison)
  const TensorView* b = (*file)->Find("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kBF16);
  EXPECT_EQ(Bf16ToF32(reinterpret_cast<const uint16_t*>(b->data)[1]), -2.0f);
  const TensorView* c = (*file)->Find("c.count");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->dtype, DType::kI64);
  EXPECT_EQ((*file)->Find("empty")->numel(), 0);
  EXPECT_EQ((*file)->Find("missing"), nullptr);
}

TEST(SafetensorsTest, WriteRejectsBytesThatDoNotMatchTheShape) {
  TempDir dir;
  const float f32[3] = {1, 2, 3};
  const std::vector<TensorToWrite> tensors = {{"a", DType::kF32, {2, 2}, Bytes(f32, sizeof(f32))}};
  EXPECT_THAT(WriteSafetensors(dir.path() / "x.safetensors", tensors),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'a'"), HasSubstr("12 bytes"))));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "x.safetensors"));
}

TEST(SafetensorsTest, WriteRejectsDuplicateNames) {
  TempDir dir;
  const float f32[1] = {1};
  const std::vector<TensorToWrite> tensors = {{"a", DType::kF32, {1}, Bytes(f32, 4)},
                                              {"a", DType::kF32, {1}, Bytes(f32, 4)}};
  EXPECT_THAT(WriteSafetensors(dir.path() / "x.safetensors", tensors),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listed twice")));
}

TEST(SafetensorsWriterTest, StreamsPiecesAcrossTensorBoundaries) {
  TempDir dir;
  std::vector<float> data(10);
  for (int i = 0; i < 10; ++i) data[i] = static_cast<float>(i);
  const std::vector<TensorToWrite> tensors = {{"a", DType::kF32, {3}, Bytes(data.data(), 12)},
                                              {"b", DType::kF32, {7}, Bytes(data.data() + 3, 28)}};
  ASSERT_THAT(WriteSafetensors(dir.path() / "whole.safetensors", tensors), IsOk());

  auto writer = SafetensorsWriter::Create(dir.path() / "streamed.safetensors",
                                          {{"a", DType::kF32, {3}}, {"b", DType::kF32, {7}}});
  ASSERT_THAT(writer, IsOk());
  EXPECT_EQ((*writer)->data_size(), 40u);
  const auto* bytes = reinterpret_cast<const std::byte*>(data.data());
  ASSERT_THAT((*writer)->Append({bytes, 5}), IsOk());       // inside a
  ASSERT_THAT((*writer)->Append({bytes + 5, 20}), IsOk());  // straddles a | b
  ASSERT_THAT((*writer)->Append({bytes + 25, 15}), IsOk());
  EXPECT_THAT((*writer)->Append({bytes, 1}), StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("exceeds")));
  ASSERT_THAT((*writer)->Finish(), IsOk());
  EXPECT_EQ(ReadFile(dir.path() / "streamed.safetensors"), ReadFile(dir.path() / "whole.safetensors"));
}

TEST(SafetensorsWriterTest, DirectIoWritesTheSameTensorsWithABlockAlignedDataSection) {
  TempDir dir;
  std::vector<uint16_t> data(3 * 5000 + 7);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint16_t>(i * 2654435761u);
  const auto* bytes = reinterpret_cast<const std::byte*>(data.data());
  SafetensorsWriteOptions options;
  options.direct_io = true;
  const auto path = dir.path() / "direct.safetensors";
  auto writer = SafetensorsWriter::Create(path, {{"a", DType::kBF16, {3, 5000}}, {"b", DType::kF16, {7}}},
                                          {{"format", "pt"}}, options);
  ASSERT_THAT(writer, IsOk());
  ASSERT_THAT((*writer)->Append({bytes, 10001}), IsOk());
  ASSERT_THAT((*writer)->Append({bytes + 10001, data.size() * 2 - 10001}), IsOk());
  ASSERT_THAT((*writer)->Finish(), IsOk());
  EXPECT_EQ(std::filesystem::file_size(path), (*writer)->file_size());
  const std::string raw = ReadFile(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  if ((*writer)->direct_io()) {  // false where the filesystem refuses O_DIRECT (tmpfs)
    EXPECT_EQ((8 + header_len) % 4096, 0u);
  }
  EXPECT_EQ(header_len % 8, 0u);
  auto file = SafetensorsFile::Open(path);
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ(std::memcmp((*file)->Find("a")->data, bytes, 30000), 0);
  EXPECT_EQ(std::memcmp((*file)->Find("b")->data, bytes + 30000, 14), 0);
}

TEST(SafetensorsWriterTest, FinishWithMissingBytesNamesTheTensorAndLeavesNoFile) {
  TempDir dir;
  const auto path = dir.path() / "x.safetensors";
  {
    auto writer = SafetensorsWriter::Create(path, {{"a", DType::kF32, {2}}, {"b", DType::kBF16, {4}}});
    ASSERT_THAT(writer, IsOk());
    const float f[2] = {1, 2};
    ASSERT_THAT((*writer)->Append(Bytes(f, 8)), IsOk());
    EXPECT_THAT((*writer)->Finish(),
                StatusIs(absl::StatusCode::kFailedPrecondition, AllOf(HasSubstr("'b'"), HasSubstr("8 of 16"))));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "x.safetensors.partial"));
}

TEST(SafetensorsFileTest, MissingFileIsNotFound) {
  TempDir dir;
  EXPECT_THAT(SafetensorsFile::Open(dir.path() / "nope.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope.safetensors")));
}

TEST(SafetensorsFileTest, RejectsFileShorterThanTheLengthPrefix) {
  TempDir dir;
  const auto path = dir.path() / "tiny.safetensors";
  WriteFile(path, "abc");
  EXPECT_THAT(SafetensorsFile::Open(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    AllOf(HasSubstr("tiny.safetensors"), HasSubstr("truncated"))));
}

TEST(SafetensorsFileTest, RejectsTruncatedDataSection) {
  TempDir dir;
  std::vector<float> data(64, 1.0f);
  const std::vector<TensorToWrite> tensors = {{"a", DType::kF32, {32}, Bytes(data.data(), 128)},
                                              {"b", DType::kF32, {32}, Bytes(data.data(), 128)}};
  const auto path = dir.path() / "cut.safetensors";
  ASSERT_THAT(WriteSafetensors(path, tensors), IsOk());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("cut.safetensors"), HasSubstr("'b'"), HasSubstr("truncated"))));
}

TEST(SafetensorsFileTest, RejectsHeaderLengthLargerThanFile) {
  TempDir dir;
  const auto path = dir.path() / "long.safetensors";
  WriteFile(path, RawFile("{}", "", /*declared_length=*/1000));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("long.safetensors"), HasSubstr("header length 1000 exceeds"))));
}

TEST(SafetensorsFileTest, RejectsBadHeaderJson) {
  TempDir dir;
  const auto path = dir.path() / "bad.safetensors";
  WriteFile(path, RawFile("{\"a\": {\"dtype\": ", ""));
  EXPECT_THAT(SafetensorsFile::Open(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    AllOf(HasSubstr("bad.safetensors"), HasSubstr("bad header JSON"))));
  WriteFile(path, RawFile("[1, 2]  ", ""));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a JSON object")));
}

TEST(SafetensorsFileTest, RejectsUnknownDtype) {
  TempDir dir;
  const auto path = dir.path() / "dt.safetensors";
  WriteFile(path, RawFile(R"({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", "abcd"));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("dt.safetensors"), HasSubstr("'w'"), HasSubstr("unsupported dtype 'F8_E4M3'"))));
}

TEST(SafetensorsFileTest, RejectsOffsetsInconsistentWithShape) {
  TempDir dir;
  const auto path = dir.path() / "off.safetensors";
  WriteFile(path,
            RawFile(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", std::string(12, 'x')));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("off.safetensors"), HasSubstr("'w'"),
                                                                 HasSubstr("[2, 2]"), HasSubstr("needs 16"))));
}

TEST(SafetensorsFileTest, RejectsOffsetsOutOfBounds) {
  TempDir dir;
  const auto path = dir.path() / "oob.safetensors";
  WriteFile(path, RawFile(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", std::string(8, 'x')));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'w'"), HasSubstr("beyond the 8-byte"))));
}

TEST(SafetensorsFileTest, RejectsOverlappingTensors) {
  TempDir dir;
  const auto path = dir.path() / "ovl.safetensors";
  WriteFile(path, RawFile(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          std::string(12, 'x')));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("ovl.safetensors"), HasSubstr("'a'"), HasSubstr("'b'"), HasSubstr("overlap"))));
}

TEST(SafetensorsFileTest, RejectsHolesAndTrailingBytes) {
  TempDir dir;
  const auto path = dir.path() / "hole.safetensors";
  WriteFile(path, RawFile(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                              "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                          std::string(12, 'x')));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes [4, 8) of the data section")));
  WriteFile(path, RawFile(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", std::string(6, 'x')));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes [4, 6) at the end")));
}

TEST(SafetensorsFileTest, RejectsNonStringMetadata) {
  TempDir dir;
  const auto path = dir.path() / "meta.safetensors";
  WriteFile(path, RawFile(R"({"__metadata__": {"format": "pt", "step": 3}})", ""));
  EXPECT_THAT(SafetensorsFile::Open(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("meta.safetensors"), HasSubstr("'step'"), HasSubstr("not a string"))));
}

TEST(SafetensorsFileTest, RejectsMalformedEntries) {
  TempDir dir;
  const auto path = dir.path() / "m.safetensors";
  WriteFile(path, RawFile(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})", ""));
  EXPECT_THAT(SafetensorsFile::Open(path), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-negative")));
  WriteFile(path, RawFile(R"({"w": {"dtype": "F32", "shape": [1]}})", ""));
  EXPECT_THAT(SafetensorsFile::Open(path), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data_offsets")));
  WriteFile(path, RawFile(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", "abcd"));
  EXPECT_THAT(SafetensorsFile::Open(path), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reversed")));
}

// --- WeightStore ---------------------------------------------------------------------------------

class WeightStoreTest : public ::testing::Test {
 protected:
  void WriteShard(const std::string& file, const std::vector<std::string>& names) {
    std::vector<TensorToWrite> tensors;
    tensors.reserve(names.size());
    for (const std::string& n : names) tensors.push_back({n, DType::kF32, {2, 3}, Bytes(values_, sizeof(values_))});
    ASSERT_THAT(WriteSafetensors(dir_.path() / file, tensors), IsOk());
  }
  TempDir dir_;
  const float values_[6] = {1, 2, 3, 4, 5, 6};
};

TEST_F(WeightStoreTest, OpensSingleFile) {
  WriteShard("model.safetensors", {"w", "v"});
  auto store = WeightStore::Open(dir_.path());
  ASSERT_THAT(store, IsOk());
  const int64_t shape[] = {2, 3};
  auto w = (*store)->Get("w", shape);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(reinterpret_cast<const float*>(w->data)[5], 6.0f);
  EXPECT_EQ((*store)->FileOf("w"), dir_.path() / "model.safetensors");
  EXPECT_TRUE((*store)->FileOf("nope").empty());
  EXPECT_EQ((*store)->files().size(), 1u);
}

TEST_F(WeightStoreTest, GetNamesTensorFileAndBothShapes) {
  WriteShard("model.safetensors", {"w"});
  auto store = WeightStore::Open(dir_.path());
  ASSERT_THAT(store, IsOk());
  const int64_t wrong[] = {3, 2};
  const std::string file = (dir_.path() / "model.safetensors").string();
  EXPECT_THAT((*store)->Get("w", wrong),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tensor 'w' in " + file + " has shape [2, 3], expected [3, 2]")));
  EXPECT_THAT((*store)->Get("nope", wrong),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("tensor 'nope' not found in " + file)));
}

TEST_F(WeightStoreTest, GetRejectsIntegerWeights) {
  const int64_t ids[2] = {1, 2};
  ASSERT_THAT(WriteSafetensors(dir_.path() / "model.safetensors",
                               std::vector<TensorToWrite>{{"ids", DType::kI64, {2}, Bytes(ids, sizeof(ids))}}),
              IsOk());
  auto store = WeightStore::Open(dir_.path());
  ASSERT_THAT(store, IsOk());
  const int64_t shape[] = {2};
  EXPECT_THAT((*store)->Get("ids", shape),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'ids'"), HasSubstr("dtype I64"))));
}

TEST_F(WeightStoreTest, EmptyDirectoryIsNotFound) {
  EXPECT_THAT(WeightStore::Open(dir_.path()), StatusIs(absl::StatusCode::kNotFound, HasSubstr("no model.safetensors")));
}

TEST_F(WeightStoreTest, OpensShardsListedByTheIndex) {
  WriteShard("model-00001-of-00002.safetensors", {"a", "b"});
  WriteShard("model-00002-of-00002.safetensors", {"c"});
  WriteFile(dir_.path() / "model.safetensors.index.json",
            R"({"metadata": {"total_size": 72}, "weight_map": {
                 "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"}})");
  auto store = WeightStore::Open(dir_.path());
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ((*store)->files().size(), 2u);
  EXPECT_EQ((*store)->FileOf("c"), dir_.path() / "model-00002-of-00002.safetensors");
  ASSERT_NE((*store)->Find("b"), nullptr);
  const int64_t shape[] = {2, 3};
  EXPECT_THAT((*store)->Get("c", shape), IsOk());
  const int64_t wrong[] = {6};
  EXPECT_THAT((*store)->Get("c", wrong),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model-00002-of-00002.safetensors has shape")));
}

TEST_F(WeightStoreTest, IndexPointingToMissingShardIsNotFound) {
  WriteShard("model-00001-of-00002.safetensors", {"a"});
  WriteFile(dir_.path() / "model.safetensors.index.json",
            R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                               "b": "model-00002-of-00002.safetensors"}})");
  EXPECT_THAT(
      WeightStore::Open(dir_.path()),
      StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("model.safetensors.index.json"),
                                                  HasSubstr("model-00002-of-00002.safetensors"), HasSubstr("'b'"))));
}

TEST_F(WeightStoreTest, IndexMustMatchShardContents) {
  WriteShard("s1.safetensors", {"a", "extra"});
  WriteFile(dir_.path() / "model.safetensors.index.json", R"({"weight_map": {"a": "s1.safetensors"}})");
  EXPECT_THAT(WeightStore::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'extra'"), HasSubstr("s1.safetensors"))));
  WriteFile(dir_.path() / "model.safetensors.index.json",
            R"({"weight_map": {"a": "s1.safetensors", "extra": "s1.safetensors", "z": "s1.safetensors"}})");
  EXPECT_THAT(WeightStore::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'z'"), HasSubstr("lacks it"))));
}

TEST_F(WeightStoreTest, RejectsBadIndex) {
  const auto index = dir_.path() / "model.safetensors.index.json";
  WriteFile(index, "{ not json");
  EXPECT_THAT(WeightStore::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("index.json"), HasSubstr("bad JSON"))));
  WriteFile(index, R"({"metadata": {}})");
  EXPECT_THAT(WeightStore::Open(dir_.path()), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight_map")));
  WriteFile(index, R"({"weight_map": {"a": 3}})");
  EXPECT_THAT(WeightStore::Open(dir_.path()), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'a'")));
  WriteFile(index, R"({"weight_map": {"a": "../elsewhere.safetensors"}})");
  EXPECT_THAT(WeightStore::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("'a'"), HasSubstr("../elsewhere"))));
}

TEST(SafetensorsSharedTest, OpensStoriesMixtral) {
  ADAK_REQUIRE_SHARED(shared);
  auto file = SafetensorsFile::Open(shared / "models/stories-mixtral/model.safetensors");
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->tensors().size(), 127u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  for (const auto& [name, view] : (*file)->tensors()) EXPECT_EQ(view.dtype, DType::kBF16) << name;
  const TensorView* embed = (*file)->Find("model.embed_tokens.weight");
  ASSERT_NE(embed, nullptr);
  EXPECT_THAT(embed->shape, ElementsAre(4096, 256));
}

}  // namespace
}  // namespace adak::engine
