// examples/common/plot.h — line and scatter plots written as PNG, for the examples' pictures.
//
// A thin layer over PLplot (Debian's libplplot-dev with its cairo driver): the examples say
// what to draw, PLplot does axes, ticks, labels, legend and anti-aliased rendering.
//
//   examples::Plot plot("KL fits", "x", "density");
//   plot.line("p(x)", xs, ps).line("forward KL", xs, qs);
//   plot.save_png("out/fit.png");
#pragma once

#include <string>
#include <vector>

namespace examples {

struct Color {
  int r = 0, g = 0, b = 0;
};

// Ten distinguishable colours (matplotlib's "tab10"); series without a colour take them in turn.
Color palette(int index);

class Plot {
 public:
  Plot(std::string title, std::string x_label, std::string y_label);

  Plot& line(const std::string& label, const std::vector<double>& x, const std::vector<double>& y);
  Plot& line(const std::string& label, const std::vector<double>& x, const std::vector<double>& y,
             Color color, bool dashed = false);
  Plot& points(const std::string& label, const std::vector<double>& x,
               const std::vector<double>& y, Color color);
  // Puts the legend to the right of the plot instead of inside it (for dense scatter plots).
  Plot& legend_outside();
  // A logarithmic x axis (ticks at powers of 10); x values ≤ 0 are left out.
  Plot& log_x();
  // Fixes an axis range instead of fitting the data (for a log axis: in log10 units).
  Plot& x_range(double low, double high);
  Plot& y_range(double low, double high);

  // Renders and writes the PNG (complete or not at all). Throws tg::Error on failure.
  void save_png(const std::string& path, int width = 960, int height = 600) const;

 private:
  struct Series {
    std::string label;
    std::vector<double> x, y;
    Color color;
    bool points = false, dashed = false;
  };
  std::string title_, x_label_, y_label_;
  std::vector<Series> series_;
  bool fixed_x_ = false, fixed_y_ = false, legend_outside_ = false, log_x_ = false;
  double x_low_ = 0, x_high_ = 1, y_low_ = 0, y_high_ = 1;
};

// A matrix of cells as a PNG (a confusion matrix): row 0 at the top, cell (r, c) shaded from
// white (shade 0) to dark blue (shade 1) and labelled with text[r·columns + c], rows and columns
// named along the left and bottom edges. Throws tg::Error on failure, like Plot::save_png.
struct Heatmap {
  std::string title, x_label, y_label;
  std::vector<std::string> row_names, column_names;
  std::vector<double> shade;       // rows × columns, each in [0, 1]
  std::vector<std::string> text;   // rows × columns
  void save_png(const std::string& path, int width = 900, int height = 820) const;
};

}  // namespace examples
