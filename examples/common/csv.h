// examples/common/csv.h — the examples' CSV files: a header and rows of cells, written to a
// temporary file beside the target and renamed over it, so a reader (or a crash) never sees half
// a file. Cells are plain text; numbers go through cell(), which keeps 10 significant digits.
//
//   examples::write_csv("out/ppo/learning_curve.csv", {"steps", "mean_return"},
//                       {{examples::cell(512), examples::cell(21.5)}});
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tapegrad/error.h"

namespace examples {

inline std::string cell(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

inline void write_csv(const std::string& path, const std::vector<std::string>& columns,
                      const std::vector<std::vector<std::string>>& rows) {
  auto write_row = [](std::ofstream& out, const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) out << (i ? "," : "") << cells[i];
    out << '\n';
  };
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    write_row(out, columns);
    for (const auto& row : rows) {
      tg::check(row.size() == columns.size(), "write_csv", path, ": a row has ", row.size(),
                " cells for ", columns.size(), " columns");
      write_row(out, row);
    }
    out.flush();
    tg::check(static_cast<bool>(out), "write_csv", "cannot write ", temporary);
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  tg::check(!error, "write_csv", "cannot rename ", temporary, " to ", path, ": ", error.message());
}

}  // namespace examples
