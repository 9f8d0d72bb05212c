// fashion_mnist.h — the examples' way of loading Fashion-MNIST, with the help a user needs when
// the files are missing.
#pragma once

#include <string>

#include "tapegrad/data.h"
#include "tapegrad/error.h"

namespace examples {

// Where Debian's dataset-fashion-mnist package puts the files.
inline const char* const kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Loads the training and test sets from `dir` onto `device`. On failure prints the error and
// how to get the data (the Debian package for the default folder, the expected file names for
// any other) to stderr, and returns false.
bool load_fashion_mnist(const std::string& dir, tg::Device device, tg::data::Dataset& train,
                        tg::data::Dataset& test);

}  // namespace examples
