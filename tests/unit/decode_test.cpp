#include "lsp_sweeper/node/decode.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lsp_sweeper/node/client.hpp"

namespace lsp_sweeper::node {
namespace {

const std::string kHash = "3febfae1e68b190c15461f4c2a3290f9af1dae63fd7d620d2bd61601869026cd";
const std::string kHash2 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const std::string kPreimage = "89d28bd306aa9bb906fd0ac31092d04c37c919a171b343083167e2a3cdc60578";

std::string quote(const std::string& s) { return "\"" + s + "\""; }

// Raw JSON per field, so a test can send what nlohmann would never produce itself (2^64,
// 1e999, a NUL escape). std::nullopt leaves the field out.
using Fields = std::map<std::string, std::optional<std::string>>;

std::string object(const Fields& fields) {
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (!value) continue;
    if (out.size() > 1) out += ",";
    out += quote(key) + ":" + *value;
  }
  return out + "}";
}

Fields with(Fields base, const Fields& overrides) {
  for (const auto& [key, value] : overrides) base[key] = value;
  return base;
}

Fields paginated_payment(const std::string& hash = kHash) {
  return {
      {"payment_hash", quote(hash)},
      {"payment_type", quote("InboundHodl")},
      {"status", quote("Claimable")},
      {"amt_msat", "3000000"},
      {"asset_id", "null"},
      {"asset_amount", "null"},
      {"created_at", "1691160765"},
      {"updated_at", "1691162674"},
      {"payee_pubkey", quote("03b79a4bc1ec365524b4fab9a39eb133753646babb5a1da5c4bc94c53110b7795d")},
      {"description_hash", "null"}};
}

Fields legacy_payment(const std::string& hash = kHash) {
  Fields p = paginated_payment(hash);
  p.erase("payment_type");
  p["inbound"] = "true";
  p["status"] = quote("Succeeded");
  return p;
}

std::string paginated_body(const std::vector<std::string>& payments, std::string first = "100",
                           std::string last = "51") {
  std::string list;
  for (const auto& p : payments) list += (list.empty() ? "" : ",") + p;
  return "{\"payments\":[" + list + "],\"first_index_offset\":" + first +
         ",\"last_index_offset\":" + last + "}";
}

std::string legacy_body(const std::vector<std::string>& payments) {
  std::string list;
  for (const auto& p : payments) list += (list.empty() ? "" : ",") + p;
  return "{\"payments\":[" + list + "]}";
}

TEST(DecodeListPayments, PaginatedPageDecodesEveryField) {
  const std::string body =
      paginated_body({object(with(paginated_payment(), {{"preimage", quote(kPreimage)},
                                                        {"claim_deadline_height", "805500"}})),
                      object(with(paginated_payment(kHash2), {{"payment_type", quote("Outbound")},
                                                              {"status", quote("Succeeded")},
                                                              {"amt_msat", "null"}}))});
  const PaymentPage page = decode_list_payments(body);

  EXPECT_EQ(page.dialect, Dialect::Paginated);
  EXPECT_EQ(page.first_index_offset, 100u);
  EXPECT_EQ(page.last_index_offset, 51u);
  EXPECT_TRUE(page.rejected.empty());
  ASSERT_EQ(page.payments.size(), 2u);

  const NodePayment& hodl = page.payments[0];
  EXPECT_EQ(hodl.payment_hash, kHash);
  EXPECT_EQ(hodl.type, PaymentType::InboundHodl);
  EXPECT_EQ(hodl.status, NodeStatus::Claimable);
  EXPECT_EQ(hodl.amt_msat, std::optional<std::uint64_t>(3000000));
  EXPECT_EQ(hodl.preimage, std::optional<std::string>(kPreimage));
  EXPECT_EQ(hodl.claim_deadline_height, std::optional<std::int64_t>(805500));
  EXPECT_EQ(hodl.created_at, 1691160765);
  EXPECT_EQ(hodl.updated_at, 1691162674);
  EXPECT_EQ(hodl.direction(), Direction::Inbound);

  const NodePayment& out = page.payments[1];
  EXPECT_EQ(out.payment_hash, kHash2);
  EXPECT_EQ(out.type, PaymentType::Outbound);
  EXPECT_EQ(out.status, NodeStatus::Succeeded);
  EXPECT_EQ(out.amt_msat, std::nullopt);
  EXPECT_EQ(out.preimage, std::nullopt);
  EXPECT_EQ(out.claim_deadline_height, std::nullopt);
}

TEST(DecodeListPayments, EveryPaymentTypeAndStatusIsRead) {
  const std::vector<std::pair<std::string, PaymentType>> types = {
      {"Outbound", PaymentType::Outbound},
      {"InboundAutoClaim", PaymentType::InboundAutoClaim},
      {"InboundHodl", PaymentType::InboundHodl}};
  const std::vector<std::pair<std::string, NodeStatus>> statuses = {
      {"Pending", NodeStatus::Pending},     {"Claimable", NodeStatus::Claimable},
      {"Claiming", NodeStatus::Claiming},   {"Succeeded", NodeStatus::Succeeded},
      {"Cancelled", NodeStatus::Cancelled}, {"Failed", NodeStatus::Failed}};
  for (const auto& [type_name, type] : types) {
    for (const auto& [status_name, status] : statuses) {
      SCOPED_TRACE(type_name + "/" + status_name);
      const PaymentPage page = decode_list_payments(
          paginated_body({object(with(paginated_payment(), {{"payment_type", quote(type_name)},
                                                            {"status", quote(status_name)}}))}));
      ASSERT_EQ(page.payments.size(), 1u);
      EXPECT_EQ(page.payments[0].type, type);
      EXPECT_EQ(page.payments[0].status, status);
    }
  }
}

TEST(DecodeListPayments, UppercaseHexIsLowercased) {
  std::string upper_hash = kHash;
  std::string upper_preimage = kPreimage;
  for (auto& c : upper_hash) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (auto& c : upper_preimage) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  const PaymentPage page = decode_list_payments(paginated_body(
      {object(with(paginated_payment(upper_hash), {{"preimage", quote(upper_preimage)}}))}));
  ASSERT_EQ(page.payments.size(), 1u);
  EXPECT_EQ(page.payments[0].payment_hash, kHash);
  EXPECT_EQ(page.payments[0].preimage, std::optional<std::string>(kPreimage));
}

TEST(DecodeListPayments, BoundaryNumbersAreAccepted) {
  const PaymentPage page = decode_list_payments(paginated_body(
      {object(with(paginated_payment(), {{"amt_msat", "9223372036854775807"},
                                         {"created_at", "9223372036854775807"},
                                         {"updated_at", "0"},
                                         {"claim_deadline_height", "4294967295"}})),
       object(with(paginated_payment(kHash2),
                   {{"amt_msat", std::nullopt}, {"claim_deadline_height", "null"}}))},
      "18446744073709551615", "0"));
  ASSERT_EQ(page.payments.size(), 2u) << (page.rejected.empty() ? "" : page.rejected[0].reason);
  EXPECT_EQ(page.payments[0].amt_msat, std::optional<std::uint64_t>(INT64_MAX));
  EXPECT_EQ(page.payments[0].created_at, INT64_MAX);
  EXPECT_EQ(page.payments[0].updated_at, 0);
  EXPECT_EQ(page.payments[0].claim_deadline_height, std::optional<std::int64_t>(UINT32_MAX));
  EXPECT_EQ(page.payments[1].amt_msat, std::nullopt);
  EXPECT_EQ(page.payments[1].claim_deadline_height, std::nullopt);
  EXPECT_EQ(page.first_index_offset, UINT64_MAX);
  EXPECT_EQ(page.last_index_offset, 0u);
}

struct RejectCase {
  std::string name;
  Fields overrides;
  std::string reason_part;  // the rejection reason must mention this
};

// Each bad payment sits between two good ones: it must be the only one rejected, and the
// good payments must survive in order.
void expect_rejected_alone(const std::vector<RejectCase>& cases, Fields (*good)(const std::string&),
                           bool paginated) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<std::string> payments = {
        object(good(kHash2)), object(with(good(kHash), c.overrides)), object(good(kHash2))};
    const PaymentPage page =
        decode_list_payments(paginated ? paginated_body(payments) : legacy_body(payments));
    ASSERT_EQ(page.rejected.size(), 1u);
    EXPECT_NE(page.rejected[0].reason.find(c.reason_part), std::string::npos)
        << "reason: " << page.rejected[0].reason;
    ASSERT_EQ(page.payments.size(), 2u);
    EXPECT_EQ(page.payments[0].payment_hash, kHash2);
    EXPECT_EQ(page.payments[1].payment_hash, kHash2);
  }
}

TEST(DecodeListPayments, MalformedPaymentIsRejectedAlone) {
  const std::string h63 = kHash.substr(1);
  const std::string h65 = kHash + "0";
  const std::string two_to_64 = "18446744073709551616";
  const std::string two_to_63 = "9223372036854775808";
  const std::vector<RejectCase> cases = {
      {"hash is a number", {{"payment_hash", "42"}}, "payment_hash is not a string"},
      {"hash is null", {{"payment_hash", "null"}}, "payment_hash is not a string"},
      {"hash is missing", {{"payment_hash", std::nullopt}}, "payment_hash is missing"},
      {"hash is empty", {{"payment_hash", quote("")}}, "not 64 hex digits"},
      {"hash has 63 digits", {{"payment_hash", quote(h63)}}, "not 64 hex digits"},
      {"hash has 65 digits", {{"payment_hash", quote(h65)}}, "not 64 hex digits"},
      {"hash is not hex", {{"payment_hash", quote("g" + h63)}}, "not 64 hex digits"},
      {"hash has a NUL byte",
       {{"payment_hash", quote(h63.substr(1) + "\\u0000" + "a")}},
       "not 64 hex digits"},
      {"hash is unicode",
       {{"payment_hash", quote(kHash.substr(0, 62) + "\\u00e9")}},  // 64 bytes in UTF-8
       "not 64 hex digits"},
      {"hash is SQL",
       {{"payment_hash", quote("'; DROP TABLE async_rotating_invoices; --")}},
       "not 64 hex digits"},
      {"hash is an object", {{"payment_hash", "{}"}}, "payment_hash is not a string"},
      {"payment_type unknown", {{"payment_type", quote("InboundMaybe")}}, "payment_type"},
      {"payment_type wrong case", {{"payment_type", quote("inboundhodl")}}, "unknown"},
      {"payment_type missing", {{"payment_type", std::nullopt}}, "payment_type is missing"},
      {"payment_type is a number", {{"payment_type", "1"}}, "payment_type is not a string"},
      {"status unknown", {{"status", quote("Settled")}}, "status 'Settled' is unknown"},
      {"status wrong case", {{"status", quote("claimable")}}, "is unknown"},
      {"status missing", {{"status", std::nullopt}}, "status is missing"},
      {"status is a bool", {{"status", "true"}}, "status is not a string"},
      {"amt_msat negative", {{"amt_msat", "-1"}}, "amt_msat is negative"},
      {"amt_msat float", {{"amt_msat", "1.5"}}, "amt_msat is not an integer"},
      {"amt_msat whole float", {{"amt_msat", "3000000.0"}}, "amt_msat is not an integer"},
      {"amt_msat exponent", {{"amt_msat", "3e6"}}, "amt_msat is not an integer"},
      {"amt_msat string", {{"amt_msat", quote("3000000")}}, "amt_msat is not a number"},
      {"amt_msat bool", {{"amt_msat", "false"}}, "amt_msat is not a number"},
      {"amt_msat 2^64", {{"amt_msat", two_to_64}}, "amt_msat is out of range"},
      // What an LSP amount column of -1 or INT64_MIN reads as when it wraps to unsigned.
      {"amt_msat 2^64-1",
       {{"amt_msat", "18446744073709551615"}},
       "amt_msat is out of range (above 9223372036854775807)"},
      {"amt_msat 2^63", {{"amt_msat", two_to_63}}, "amt_msat is out of range"},
      {"amt_msat -2^64", {{"amt_msat", "-" + two_to_64}}, "amt_msat is negative"},
      {"amt_msat huge", {{"amt_msat", "123456789012345678901234567890"}}, "out of range"},
      {"created_at missing", {{"created_at", std::nullopt}}, "created_at is missing"},
      {"created_at null", {{"created_at", "null"}}, "created_at is not a number"},
      {"created_at string", {{"created_at", quote("1691160765")}}, "created_at is not a number"},
      {"created_at negative", {{"created_at", "-1"}}, "created_at is negative"},
      {"created_at float", {{"created_at", "1691160765.5"}}, "created_at is not an integer"},
      {"created_at 2^63", {{"created_at", two_to_63}}, "created_at is out of range"},
      {"created_at 2^64", {{"created_at", two_to_64}}, "created_at is out of range"},
      {"updated_at missing", {{"updated_at", std::nullopt}}, "updated_at is missing"},
      {"updated_at negative", {{"updated_at", "-1691162674"}}, "updated_at is negative"},
      {"preimage too short", {{"preimage", quote(kPreimage.substr(2))}}, "preimage"},
      {"preimage not hex", {{"preimage", quote("z" + kPreimage.substr(1))}}, "not 64 hex"},
      {"preimage number", {{"preimage", "7"}}, "preimage is not a string"},
      {"preimage empty", {{"preimage", quote("")}}, "preimage"},
      {"deadline negative", {{"claim_deadline_height", "-5"}}, "claim_deadline_height is neg"},
      {"deadline string", {{"claim_deadline_height", quote("805500")}}, "is not a number"},
      {"deadline float", {{"claim_deadline_height", "805500.5"}}, "is not an integer"},
      {"deadline 2^63", {{"claim_deadline_height", two_to_63}}, "is out of range"},
      {"deadline 2^32",
       {{"claim_deadline_height", "4294967296"}},
       "claim_deadline_height is out of range (above 4294967295)"},
      {"deadline INT64_MAX", {{"claim_deadline_height", "9223372036854775807"}}, "out of range"},
  };
  expect_rejected_alone(
      cases, [](const std::string& h) { return paginated_payment(h); }, true);
}

TEST(DecodeListPayments, PaymentThatIsNotAnObjectIsRejectedAlone) {
  for (const std::string& bad :
       std::vector<std::string>{"42", quote(kHash), "[]", "null", "true"}) {
    SCOPED_TRACE(bad);
    const PaymentPage page =
        decode_list_payments(paginated_body({object(paginated_payment()), bad}));
    ASSERT_EQ(page.payments.size(), 1u);
    ASSERT_EQ(page.rejected.size(), 1u);
    EXPECT_EQ(page.rejected[0].payment_hash, "");
    EXPECT_NE(page.rejected[0].reason.find("not an object"), std::string::npos);
  }
}

TEST(DecodeListPayments, RejectionQuotesTheHashAsSentButPrintable) {
  const std::string upper = "3FEBFAE1E68B190C15461F4C2A3290F9AF1DAE63FD7D620D2BD61601869026CD";
  const PaymentPage page = decode_list_payments(paginated_body(
      {object(with(paginated_payment(upper), {{"payment_type", quote("Sideways")}})),
       object(with(paginated_payment(), {{"payment_hash", quote("ab\\u0000\\ncd")}})),
       object(with(paginated_payment(), {{"payment_hash", "12345"}})),
       object(with(paginated_payment(), {{"payment_hash", quote(std::string(500, 'x'))}}))}));
  ASSERT_EQ(page.rejected.size(), 4u);
  EXPECT_EQ(page.rejected[0].payment_hash, upper);
  EXPECT_NE(page.rejected[0].reason.find("'Sideways'"), std::string::npos);
  EXPECT_EQ(page.rejected[1].payment_hash, "ab??cd");
  EXPECT_EQ(page.rejected[1].reason.find('\0'), std::string::npos);
  EXPECT_EQ(page.rejected[2].payment_hash, "");
  EXPECT_LT(page.rejected[3].payment_hash.size(), 100u);
  EXPECT_LT(page.rejected[3].reason.size(), 100u);
}

TEST(DecodeListPayments, ForgedPreimageIsNotTheDecodersBusiness) {
  // sha256(kPreimage) != kHash2: the planner reports that as a divergence, so the decoder
  // must pass the payment through.
  const PaymentPage page = decode_list_payments(
      paginated_body({object(with(paginated_payment(kHash2), {{"preimage", quote(kPreimage)}}))}));
  ASSERT_EQ(page.payments.size(), 1u);
  EXPECT_EQ(page.payments[0].preimage, std::optional<std::string>(kPreimage));
}

TEST(DecodeListPayments, LegacyPageUsesInboundFlag) {
  const PaymentPage page = decode_list_payments(legacy_body(
      {object(legacy_payment()),
       object(with(legacy_payment(kHash2), {{"inbound", "false"},
                                            {"status", quote("Pending")},
                                            {"description", quote("1 cup of coffee")}})),
       object(with(legacy_payment(kHash2), {{"status", quote("Failed")}}))}));
  EXPECT_EQ(page.dialect, Dialect::Legacy);
  EXPECT_EQ(page.first_index_offset, 0u);
  EXPECT_EQ(page.last_index_offset, 0u);
  ASSERT_TRUE(page.rejected.empty()) << page.rejected[0].reason;
  ASSERT_EQ(page.payments.size(), 3u);
  EXPECT_EQ(page.payments[0].type, PaymentType::InboundUnknown);
  EXPECT_EQ(page.payments[0].status, NodeStatus::Succeeded);
  EXPECT_EQ(page.payments[1].type, PaymentType::Outbound);
  EXPECT_EQ(page.payments[1].status, NodeStatus::Pending);
  EXPECT_EQ(page.payments[2].status, NodeStatus::Failed);
}

TEST(DecodeListPayments, LegacyIgnoresPaymentTypeField) {
  // Only `inbound` speaks for direction in the legacy dialect.
  const PaymentPage page = decode_list_payments(legacy_body(
      {object(with(legacy_payment(), {{"inbound", "false"}, {"payment_type", quote("Bogus")}}))}));
  ASSERT_EQ(page.payments.size(), 1u);
  EXPECT_EQ(page.payments[0].type, PaymentType::Outbound);
}

TEST(DecodeListPayments, MalformedLegacyPaymentIsRejectedAlone) {
  const std::vector<RejectCase> cases = {
      {"status Claimable", {{"status", quote("Claimable")}}, "legacy"},
      {"status Claiming", {{"status", quote("Claiming")}}, "legacy"},
      {"status Cancelled", {{"status", quote("Cancelled")}}, "legacy"},
      {"inbound missing", {{"inbound", std::nullopt}}, "inbound is missing"},
      {"inbound string", {{"inbound", quote("true")}}, "inbound is not a boolean"},
      {"inbound number", {{"inbound", "1"}}, "inbound is not a boolean"},
      {"inbound null", {{"inbound", "null"}}, "inbound is not a boolean"},
      {"payment_type instead of inbound",
       {{"inbound", std::nullopt}, {"payment_type", quote("InboundHodl")}},
       "inbound is missing"},
      {"hash 63 digits", {{"payment_hash", quote(kHash.substr(1))}}, "not 64 hex digits"},
      {"amt_msat negative", {{"amt_msat", "-3"}}, "amt_msat is negative"},
      {"created_at missing", {{"created_at", std::nullopt}}, "created_at is missing"},
  };
  expect_rejected_alone(
      cases, [](const std::string& h) { return legacy_payment(h); }, false);
}

TEST(DecodeListPayments, UnusableBodyIsADecodeError) {
  const std::string good = object(paginated_payment());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not JSON"},
      {"<html>502 Bad Gateway</html>", "not JSON"},
      {"{\"payments\": [", "not JSON"},
      {legacy_body({good}) + " trailing", "not JSON"},
      {"{\"payments\": [{\"amt_msat\": 1e999}]}", "not JSON"},
      {"[]", "not a JSON object"},
      {"42", "not a JSON object"},
      {"\"payments\"", "not a JSON object"},
      {"null", "not a JSON object"},
      {"{}", "payments is missing"},
      {"{\"payment\": []}", "payments is missing"},
      {"{\"payments\": {}}", "payments is not an array"},
      {"{\"payments\": null}", "payments is not an array"},
      {"{\"payments\": \"[]\"}", "payments is not an array"},
      {"{\"payments\": [], \"first_index_offset\": 1}", "last_index_offset is missing"},
      {"{\"payments\": [], \"last_index_offset\": 1}", "first_index_offset is missing"},
      {paginated_body({good}, "\"100\"", "51"), "first_index_offset is not a number"},
      {paginated_body({good}, "100", "null"), "last_index_offset is not a number"},
      {paginated_body({good}, "100", "-1"), "last_index_offset is negative"},
      {paginated_body({good}, "100", "51.5"), "last_index_offset is not an integer"},
      {paginated_body({good}, "18446744073709551616", "51"), "first_index_offset is out of"},
      {paginated_body({good}, "100", "[51]"), "last_index_offset is not a number"},
  };
  for (const auto& [body, message] : cases) {
    SCOPED_TRACE(body);
    try {
      decode_list_payments(body);
      ADD_FAILURE() << "no DecodeError";
    } catch (const DecodeError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("listpayments: ", 0), 0u) << what;
      EXPECT_NE(what.find(message), std::string::npos) << what;
    }
  }
}

TEST(DecodeListPayments, EmptyPagesDecode) {
  const PaymentPage paginated = decode_list_payments(paginated_body({}, "0", "0"));
  EXPECT_EQ(paginated.dialect, Dialect::Paginated);
  EXPECT_TRUE(paginated.payments.empty());
  EXPECT_TRUE(paginated.rejected.empty());
  const PaymentPage legacy = decode_list_payments(legacy_body({}));
  EXPECT_EQ(legacy.dialect, Dialect::Legacy);
  EXPECT_TRUE(legacy.payments.empty());
}

TEST(DecodeGetPayment, DecodesThePaymentInEitherDialect) {
  const SinglePayment paginated = decode_get_payment(
      "{\"payment\":" + object(with(paginated_payment(), {{"preimage", quote(kPreimage)}})) + "}",
      Dialect::Paginated);
  ASSERT_TRUE(paginated.payment.has_value());
  EXPECT_FALSE(paginated.rejected.has_value());
  EXPECT_EQ(paginated.payment->payment_hash, kHash);
  EXPECT_EQ(paginated.payment->type, PaymentType::InboundHodl);
  EXPECT_EQ(paginated.payment->preimage, std::optional<std::string>(kPreimage));

  const SinglePayment legacy =
      decode_get_payment("{\"payment\":" + object(legacy_payment()) + "}", Dialect::Legacy);
  ASSERT_TRUE(legacy.payment.has_value());
  EXPECT_EQ(legacy.payment->type, PaymentType::InboundUnknown);
}

TEST(DecodeGetPayment, DialectDecidesWhichFieldsAreRequired) {
  // A paginated payment has no `inbound`; a legacy one has no `payment_type`.
  const SinglePayment as_legacy =
      decode_get_payment("{\"payment\":" + object(paginated_payment()) + "}", Dialect::Legacy);
  ASSERT_TRUE(as_legacy.rejected.has_value());
  EXPECT_FALSE(as_legacy.payment.has_value());
  EXPECT_EQ(as_legacy.rejected->payment_hash, kHash);
  EXPECT_NE(as_legacy.rejected->reason.find("inbound is missing"), std::string::npos);

  const SinglePayment as_paginated =
      decode_get_payment("{\"payment\":" + object(legacy_payment()) + "}", Dialect::Paginated);
  ASSERT_TRUE(as_paginated.rejected.has_value());
  EXPECT_NE(as_paginated.rejected->reason.find("payment_type is missing"), std::string::npos);
}

TEST(DecodeGetPayment, MalformedPaymentIsRejectedNotThrown) {
  const SinglePayment bad = decode_get_payment(
      "{\"payment\":" + object(with(paginated_payment(), {{"amt_msat", "-7"}})) + "}",
      Dialect::Paginated);
  EXPECT_FALSE(bad.payment.has_value());
  ASSERT_TRUE(bad.rejected.has_value());
  EXPECT_NE(bad.rejected->reason.find("amt_msat is negative"), std::string::npos);

  const SinglePayment not_object = decode_get_payment("{\"payment\": 7}", Dialect::Paginated);
  ASSERT_TRUE(not_object.rejected.has_value());
  EXPECT_NE(not_object.rejected->reason.find("not an object"), std::string::npos);
}

TEST(DecodeGetPayment, UnusableBodyIsADecodeError) {
  for (const std::string body : {"", "nope", "[]", "{}", "{\"payments\": []}"}) {
    SCOPED_TRACE(body);
    EXPECT_THROW(decode_get_payment(body, Dialect::Paginated), DecodeError);
  }
}

TEST(DecodeNetworkHeight, ReadsHeight) {
  EXPECT_EQ(decode_network_height("{\"network\":\"Regtest\",\"height\":805434}"), 805434);
  EXPECT_EQ(decode_network_height("{\"height\":0}"), 0);
  EXPECT_EQ(decode_network_height("{\"height\":9223372036854775807}"), INT64_MAX);
}

TEST(DecodeNetworkHeight, UnusableBodyIsADecodeError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not JSON"},
      {"805434 trailing", "not JSON"},
      {"805434", "not a JSON object"},
      {"{\"network\":\"Regtest\"}", "height is missing"},
      {"{\"height\":null}", "height is not a number"},
      {"{\"height\":\"805434\"}", "height is not a number"},
      {"{\"height\":-1}", "height is negative"},
      {"{\"height\":805434.5}", "height is not an integer"},
      {"{\"height\":9223372036854775808}", "height is out of range"},
      {"{\"height\":18446744073709551616}", "height is out of range"},
  };
  for (const auto& [body, message] : cases) {
    SCOPED_TRACE(body);
    try {
      decode_network_height(body);
      ADD_FAILURE() << "no DecodeError";
    } catch (const DecodeError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("networkinfo: ", 0), 0u) << what;
      EXPECT_NE(what.find(message), std::string::npos) << what;
    }
  }
}

TEST(DecodeDialect, Names) {
  EXPECT_EQ(to_string(Dialect::Paginated), "paginated");
  EXPECT_EQ(to_string(Dialect::Legacy), "legacy");
}

TEST(NodeClientRedactUrl, StripsUserInfoOnly) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://127.0.0.1:3001", "http://127.0.0.1:3001"},
      {"http://user:secret@127.0.0.1:3001/", "http://127.0.0.1:3001/"},
      {"https://secret@node.example:443/api?x=1", "https://node.example:443/api?x=1"},
      {"https://a:b@c@node.example", "https://node.example"},
      {"http://node.example/path@not-userinfo", "http://node.example/path@not-userinfo"},
      {"http://node.example?q=a@b", "http://node.example?q=a@b"},
      {"http://node.example#a@b", "http://node.example#a@b"},
      {"user:secret@node.example:3001/x", "node.example:3001/x"},
      {"", ""},
  };
  for (const auto& [url, redacted] : cases) {
    SCOPED_TRACE(url);
    EXPECT_EQ(redact_url(url), redacted);
  }
}

TEST(DecodeGetPayment, DialectIsDetectedFromThePayment) {
  const SinglePayment paginated =
      decode_get_payment("{\"payment\":" + object(paginated_payment()) + "}");
  EXPECT_EQ(paginated.dialect, Dialect::Paginated);
  EXPECT_TRUE(paginated.payment);
  const SinglePayment legacy = decode_get_payment("{\"payment\":" + object(legacy_payment()) + "}");
  EXPECT_EQ(legacy.dialect, Dialect::Legacy);
  ASSERT_TRUE(legacy.payment);
  EXPECT_EQ(legacy.payment->type, PaymentType::InboundUnknown);
  // Neither form: read as the paginated dialect, and rejected for its missing payment_type.
  const SinglePayment neither = decode_get_payment(R"({"payment": {"payment_hash": "x"}})");
  EXPECT_EQ(neither.dialect, Dialect::Paginated);
  EXPECT_TRUE(neither.rejected);
}

}  // namespace
}  // namespace lsp_sweeper::node
