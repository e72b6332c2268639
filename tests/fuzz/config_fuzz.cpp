// libFuzzer target for config::load(): arbitrary bytes as a config file must give either a config or a list of
// errors — never a crash, a hang or an exception. Seeds: tests/fuzz/corpus/config/.
#include <virex/config/loader.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  const virex::config::LoadResult result = virex::config::load(yaml, "fuzz.yaml");
  // The contract: a config exactly when there are no errors, and every error can be printed.
  if (result.config.has_value() != result.errors.empty()) std::abort();
  for (const virex::config::Error& error : result.errors) {
    if (error.to_string().empty()) std::abort();
  }
  return 0;
}
