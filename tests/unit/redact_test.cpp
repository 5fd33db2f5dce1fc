// Passwords never reach logs or error text: redact_db_url, and the error of a
// connection that fails.
#include <gtest/gtest.h>

#include <string>

#include "lsp_sweeper/store/store.hpp"

namespace lsp_sweeper::store {
namespace {

TEST(Redact, UriUserinfoPassword) {
  EXPECT_EQ(redact_db_url("postgresql://sweeper:hunter2@db.example:5432/lsp"),
            "postgresql://sweeper:***@db.example:5432/lsp");
  EXPECT_EQ(redact_db_url("postgres://u:p%40ss:word@h/db"), "postgres://u:***@h/db");
}

TEST(Redact, UriQueryPassword) {
  EXPECT_EQ(redact_db_url(
                "postgresql://u@h/db?sslmode=require&password=hunter2&application_name=x"),
            "postgresql://u@h/db?sslmode=require&password=***&application_name=x");
  EXPECT_EQ(redact_db_url("postgresql:///db?host=/run/pg&pass%77ord=hunter2"),
            "postgresql:///db?host=/run/pg&pass%77ord=***");
  EXPECT_EQ(redact_db_url("postgresql://u:a@h/db?password=b"),
            "postgresql://u:***@h/db?password=***");
}

TEST(Redact, UriWithoutPasswordIsUnchanged) {
  for (const std::string uri :
       {"postgresql://postgres@/postgres?host=/tmp/pg.x&port=54329", "postgresql://h:5432/db",
        "postgresql:///db", "postgresql://u@h/db?passfile=/etc/pgpass"}) {
    EXPECT_EQ(redact_db_url(uri), uri);
  }
}

TEST(Redact, KeywordValuePassword) {
  EXPECT_EQ(redact_db_url("host=h password=hunter2 dbname=lsp"),
            "host=h password=*** dbname=lsp");
  EXPECT_EQ(redact_db_url("password = hunter2"), "password = ***");
  EXPECT_EQ(redact_db_url("host=h password='hun ter\\'2' user=u"),
            "host=h password='***' user=u");
  EXPECT_EQ(redact_db_url("password=a\\ b user=u"), "password=*** user=u");
  EXPECT_EQ(redact_db_url("host=h passfile=/x user=u"), "host=h passfile=/x user=u");
}

TEST(Redact, MalformedKeywordValueHidesTheRest) {
  EXPECT_EQ(redact_db_url("host=h password='unterminated"), "host=h password='***");
  EXPECT_EQ(redact_db_url("host=h oops hunter2 password=x"), "host=h ***");
}

// libpq quotes a badly percent-encoded password back in its error.
TEST(Redact, ConnectionErrorNamesNoPassword) {
  for (const std::string uri : {"postgresql://u:hunter2@/db?host=/nonexistent&port=1",
                                "postgresql://u:hun%zzter2@/db?host=/nonexistent",
                                "host=/nonexistent port=1 password=hunter2"}) {
    try {
      open_backend(uri, Access::ReadOnly);
      FAIL() << "connected to " << uri;
    } catch (const StoreError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("cannot connect to the database (", 0), 0u) << message;
      EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
      EXPECT_EQ(message.find("hun%zzter2"), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace lsp_sweeper::store
