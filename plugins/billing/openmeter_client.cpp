#include "openmeter_client.hpp"

#include <curl/curl.h>

#include <stdexcept>

namespace kghost::billing {
namespace {

constexpr std::size_t kMaxAnswer = 2048;  // enough for a problem+json detail

std::size_t collect(char* data, std::size_t size, std::size_t n, void* ud) {
  auto* out = static_cast<std::string*>(ud);
  const std::size_t len = size * n;
  if (out->size() < kMaxAnswer) out->append(data, std::min(len, kMaxAnswer - out->size()));
  return len;
}

}  // namespace

Verdict classify(long s) {
  if (s >= 200 && s < 300) return Verdict::sent;
  if (s == 401 || s == 403) return Verdict::auth;
  if (s == 429 || s >= 500 || s < 200) return Verdict::retry;
  if (s >= 400) return Verdict::dead_letter;
  return Verdict::retry;  // 3xx: a misconfigured URL or proxy; not the data's fault
}

struct OpenMeterClient::Impl {
  CURL* curl = nullptr;
  std::string url, auth_header;
  std::chrono::milliseconds connect_timeout, timeout;
};

OpenMeterClient::OpenMeterClient(std::string base_url, std::string api_key,
                                 std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;  // [main]
  if (!curl_ready) throw std::runtime_error("billing: cannot initialise libcurl");
  impl_->curl = curl_easy_init();
  if (!impl_->curl) throw std::runtime_error("billing: cannot initialise libcurl");
  impl_->url = std::move(base_url) + "/api/v1/events";
  impl_->auth_header = "Authorization: Bearer " + api_key;
  impl_->connect_timeout = connect_timeout;
  impl_->timeout = timeout;
}

OpenMeterClient::~OpenMeterClient() {
  if (impl_->curl) curl_easy_cleanup(impl_->curl);
}

SendResult OpenMeterClient::send(std::string_view body, std::string_view traceparent) {
  CURL* c = impl_->curl;
  curl_easy_reset(c);  // keeps the connection cache: the next request reuses the socket
  std::string answer;
  curl_slist* headers = nullptr;
  // Exactly this content type: OpenMeter answers 400 to one with a charset parameter.
  headers = curl_slist_append(headers, "Content-Type: application/cloudevents-batch+json");
  headers = curl_slist_append(headers, impl_->auth_header.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  std::string tp;
  if (!traceparent.empty()) {
    tp = "traceparent: " + std::string(traceparent);
    headers = curl_slist_append(headers, tp.c_str());
  }
  curl_easy_setopt(c, CURLOPT_URL, impl_->url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(impl_->connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(impl_->timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  SendResult r;
  if (rc != CURLE_OK) {
    r.verdict = Verdict::retry;
    r.answer = curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.http_status);
  r.verdict = classify(r.http_status);
  r.answer = std::move(answer);
  return r;
}

}  // namespace kghost::billing
