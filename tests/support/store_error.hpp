// What the store tests of both backends share: the message of the StoreError a step throws.
#pragma once

#include <functional>
#include <string>

#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::testing {

// The message of the StoreError `f` throws, or "(no StoreError)".
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const store::StoreError& e) {
    return e.what();
  }
  return "(no StoreError)";
}

}  // namespace lsp_sweeper::testing
