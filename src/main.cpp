// virex-edge: parses the command line and hands over to server/. Subcommands: run (default),
// check-config, version, shards migrate FILE.sql, shards check.
#include <virex/server/server.hpp>

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"virex-edge — edge HTTP server and reverse proxy"};
  app.require_subcommand(0, 1);
  virex::server::Options opts;
  opts.version = VIREX_VERSION;
  app.add_option("-c,--config", opts.config_path, "configuration file")->capture_default_str();

  auto* run = app.add_subcommand("run", "run the server (the default)");
  run->add_option("-c,--config", opts.config_path, "configuration file")->capture_default_str();

  std::string check_path;
  auto* check = app.add_subcommand("check-config", "validate a configuration file and exit (0 = ok, 1 = errors)");
  check->add_option("file", check_path, "configuration file")->required();

  auto* version = app.add_subcommand("version", "print the version and exit");

  auto* shards = app.add_subcommand("shards", "operate on the shards of the config's databases: section");
  shards->require_subcommand(1);
  shards->add_option("-c,--config", opts.config_path, "configuration file")->capture_default_str();
  std::string sql_path;
  auto* migrate = shards->add_subcommand("migrate", "apply a SQL file to every shard primary (one transaction each)");
  migrate->add_option("file", sql_path, "SQL file")->required();
  migrate->add_option("-c,--config", opts.config_path, "configuration file")->capture_default_str();
  auto* shards_check = shards->add_subcommand("check", "check every endpoint: reachable, role, replication, ranges");
  shards_check->add_option("-c,--config", opts.config_path, "configuration file")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (*version) {
    std::cout << "virex-edge " << VIREX_VERSION << "\n";
    return 0;
  }
  if (*check) return virex::server::check_config(check_path, std::cout, std::cerr);
  if (*migrate) return virex::server::shards_migrate(opts.config_path, sql_path, std::cout, std::cerr);
  if (*shards_check) return virex::server::shards_check(opts.config_path, std::cout, std::cerr);
  return virex::server::run(opts);
}
