// src/io/csv.cpp — tables of numbers as CSV files (RFC 4180), written through AtomicFile.
#include <charconv>
#include <string>
#include <vector>

#include "files.h"
#include "tapegrad/data.h"
#include "tapegrad/error.h"

namespace tg::data {

namespace {
// A header cell, quoted when it holds a comma, a quote or a line break (quotes doubled).
std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}
}  // namespace

void write_csv(const std::string& path, const std::vector<std::string>& columns,
               const std::vector<std::vector<double>>& rows) {
  check(!columns.empty(), "write_csv", path, ": a table needs at least one column");
  for (size_t r = 0; r < rows.size(); ++r)
    check(rows[r].size() == columns.size(), "write_csv", path, ": row ", r, " has ",
          rows[r].size(), " values for ", columns.size(), " columns");
  AtomicFile file(path, "write_csv");
  std::string line;
  for (size_t c = 0; c < columns.size(); ++c) line += (c ? "," : "") + csv_cell(columns[c]);
  line += '\n';
  file.write(line.data(), line.size());
  char number[32];  // the longest shortest-round-trip double, "-2.2250738585072014e-308", is 24
  for (const std::vector<double>& row : rows) {
    line.clear();
    for (size_t c = 0; c < row.size(); ++c) {
      if (c) line += ',';
      // The shortest text that reads back as the same double: "0.1", "12", "1e-07", "nan".
      line.append(number, std::to_chars(number, number + sizeof number, row[c]).ptr);
    }
    line += '\n';
    file.write(line.data(), line.size());
  }
  file.commit();
}

}  // namespace tg::data
