// examples/common/plot.cpp — renders a Plot with PLplot's memcairo device, written by tg::write_png.
#include "plot.h"

#include <plplot/plplot.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tapegrad/error.h"
#include "tapegrad/image.h"

namespace examples {

Color palette(int index) {
  static const Color tab10[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                  {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                  {188, 189, 34}, {23, 190, 207}};
  return tab10[((index % 10) + 10) % 10];
}

Plot::Plot(std::string title, std::string x_label, std::string y_label)
    : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)) {}

Plot& Plot::line(const std::string& label, const std::vector<double>& x,
                 const std::vector<double>& y) {
  return line(label, x, y, palette(static_cast<int>(series_.size())));
}

Plot& Plot::line(const std::string& label, const std::vector<double>& x,
                 const std::vector<double>& y, Color color, bool dashed) {
  tg::check(x.size() == y.size(), "plot", "series '", label, "' has ", x.size(), " x values and ",
            y.size(), " y values");
  series_.push_back({label, x, y, color, false, dashed});
  return *this;
}

Plot& Plot::points(const std::string& label, const std::vector<double>& x,
                   const std::vector<double>& y, Color color) {
  tg::check(x.size() == y.size(), "plot", "series '", label, "' has ", x.size(), " x values and ",
            y.size(), " y values");
  series_.push_back({label, x, y, color, true, false});
  return *this;
}

Plot& Plot::legend_outside() {
  legend_outside_ = true;
  return *this;
}

Plot& Plot::log_x() {
  log_x_ = true;
  return *this;
}

Plot& Plot::x_range(double low, double high) {
  fixed_x_ = true;
  x_low_ = low;
  x_high_ = high;
  return *this;
}

Plot& Plot::y_range(double low, double high) {
  fixed_y_ = true;
  y_low_ = low;
  y_high_ = high;
  return *this;
}

namespace {

bool has_memcairo() {
  const char** menus = nullptr;
  const char** names = nullptr;
  int count = 64;
  std::vector<const char*> menu_storage(count), name_storage(count);
  menus = menu_storage.data();
  names = name_storage.data();
  plgDevs(&menus, &names, &count);
  for (int i = 0; i < count; ++i)
    if (std::strcmp(names[i], "memcairo") == 0) return true;
  return false;
}

// The finite range of a set of series' values, padded by 5%; [0, 1] when there is none.
void fit_range(const std::vector<const std::vector<double>*>& columns, double& low, double& high) {
  low = INFINITY;
  high = -INFINITY;
  for (const auto* column : columns)
    for (double v : *column)
      if (std::isfinite(v)) {
        low = std::min(low, v);
        high = std::max(high, v);
      }
  if (!(low <= high)) {
    low = 0;
    high = 1;
  }
  double pad = (high - low) * 0.05;
  if (pad == 0) pad = std::max(std::fabs(low) * 0.05, 0.5);
  low -= pad;
  high += pad;
}

void check_memcairo() {
  tg::check(has_memcairo(), "plot",
            "PLplot's memcairo device is missing; install it with "
            "`apt-get install plplot-driver-cairo`");
}

// Starts PLplot drawing into `image` (its memcairo device: the same cairo rendering as
// pngcairo); tg::write_png then writes the file, atomically like every file tapegrad writes.
void begin_page(tg::Image& image) {
  plsdev("memcairo");
  plsmem(image.width, image.height, image.pixels.data());
  plscol0(0, 255, 255, 255);  // background
  plscol0(15, 0, 0, 0);       // axes and text
  plinit();
  plcol0(15);
  pladv(0);
}

}  // namespace

void Heatmap::save_png(const std::string& path, int width, int height) const {
  const size_t rows = row_names.size(), columns = column_names.size();
  tg::check(rows > 0 && columns > 0 && shade.size() == rows * columns &&
                text.size() == rows * columns,
            "heatmap", "expected ", rows, " × ", columns, " shades and texts, got ", shade.size(),
            " and ", text.size());
  check_memcairo();
  tg::Image image(width, height, 3, 255);
  begin_page(image);
  plvpor(0.2, 0.95, 0.2, 0.9);  // room for the names on the left and at the bottom
  plwind(0, double(columns), 0, double(rows));
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < columns; ++c) {
      const double f = std::clamp(shade[r * columns + c], 0.0, 1.0);
      plscol0(1, static_cast<int>(255 - 247 * f), static_cast<int>(255 - 207 * f),
              static_cast<int>(255 - 148 * f));
      plcol0(1);
      const double top = double(rows - r), left = double(c);  // row 0 at the top
      PLFLT xs[4] = {left, left + 1, left + 1, left}, ys[4] = {top, top, top - 1, top - 1};
      plfill(4, xs, ys);
      plcol0(f > 0.5 ? 0 : 15);  // white text on dark cells
      plschr(0, 0.7);
      plptex(left + 0.5, top - 0.6, 1, 0, 0.5, text[r * columns + c].c_str());
    }
  plcol0(15);
  plschr(0, 0.8);
  plbox("bc", 0, 0, "bc", 0, 0);
  for (size_t c = 0; c < columns; ++c)  // names below the columns, written upwards
    plmtex("bv", 0.5, (double(c) + 0.5) / double(columns), 1.0, column_names[c].c_str());
  for (size_t r = 0; r < rows; ++r)
    plmtex("lv", 0.5, 1.0 - (double(r) + 0.5) / double(rows), 1.0, row_names[r].c_str());
  plschr(0, 1.0);
  plmtex("b", 7.5, 0.5, 0.5, x_label.c_str());
  plmtex("l", 9.0, 0.5, 0.5, y_label.c_str());
  plmtex("t", 1.5, 0.5, 0.5, title.c_str());
  plend();
  tg::write_png(path, image);
}

void Plot::save_png(const std::string& path, int width, int height) const {
  check_memcairo();
  double x_low = x_low_, x_high = x_high_, y_low = y_low_, y_high = y_high_;
  // With a log x axis PLplot draws log10(x): the series are transformed first.
  std::vector<Series> series = series_;
  if (log_x_)
    for (Series& s : series) {
      Series kept = s;
      kept.x.clear();
      kept.y.clear();
      for (size_t i = 0; i < s.x.size(); ++i)
        if (s.x[i] > 0) {
          kept.x.push_back(std::log10(s.x[i]));
          kept.y.push_back(s.y[i]);
        }
      s = kept;
    }
  std::vector<const std::vector<double>*> xs, ys;
  for (const Series& s : series) {
    xs.push_back(&s.x);
    ys.push_back(&s.y);
  }
  if (!fixed_x_) fit_range(xs, x_low, x_high);
  if (!fixed_y_) fit_range(ys, y_low, y_high);

  tg::Image image(width, height, 3, 255);  // a white page to draw on
  begin_page(image);
  plvpor(0.1, legend_outside_ ? 0.74 : 0.95, 0.12, 0.9);  // room for the legend on the right
  plwind(x_low, x_high, y_low, y_high);
  plbox(log_x_ ? "bcnstl" : "bcnst", 0, 0, "bcnstv", 0, 0);
  pllab(x_label_.c_str(), y_label_.c_str(), title_.c_str());

  std::vector<PLINT> opt, text_colors, line_colors, line_styles, symbol_colors, symbol_numbers;
  std::vector<PLFLT> line_widths, symbol_scales;
  std::vector<const char*> texts, symbols;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    PLINT color_index = static_cast<PLINT>(1 + i % 14);
    plscol0(color_index, s.color.r, s.color.g, s.color.b);
    plcol0(color_index);
    std::vector<double> x = s.x, y = s.y;
    if (s.points) {
      plstring(static_cast<PLINT>(x.size()), x.data(), y.data(), "#(850)");  // a small dot
    } else {
      pllsty(s.dashed ? 2 : 1);
      plwidth(2.0);
      plline(static_cast<PLINT>(x.size()), x.data(), y.data());
      pllsty(1);
    }
    opt.push_back(s.points ? PL_LEGEND_SYMBOL : PL_LEGEND_LINE);
    text_colors.push_back(15);
    texts.push_back(s.label.c_str());
    line_colors.push_back(color_index);
    line_styles.push_back(s.dashed ? 2 : 1);
    line_widths.push_back(2.0);
    symbol_colors.push_back(color_index);
    symbol_scales.push_back(2.0);
    symbol_numbers.push_back(1);
    symbols.push_back("#(850)");
  }
  if (!series.empty()) {
    PLFLT legend_width, legend_height;
    plcol0(15);
    pllegend(&legend_width, &legend_height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             legend_outside_ ? PL_POSITION_RIGHT | PL_POSITION_OUTSIDE
                             : PL_POSITION_TOP | PL_POSITION_RIGHT | PL_POSITION_INSIDE,
             0.02, 0.02, 0.1, 0, 15, 1,
             0, 0, static_cast<PLINT>(series.size()), opt.data(), 1.0, 1.0, 2.0, 0.0,
             text_colors.data(), texts.data(), nullptr, nullptr, nullptr, nullptr,
             line_colors.data(), line_styles.data(), line_widths.data(), symbol_colors.data(),
             symbol_scales.data(), symbol_numbers.data(), symbols.data());
  }
  plend();
  tg::write_png(path, image);
}

}  // namespace examples
