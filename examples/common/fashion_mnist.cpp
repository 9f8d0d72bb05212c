#include "fashion_mnist.h"

#include <iostream>

namespace examples {

bool load_fashion_mnist(const std::string& dir, tg::Device device, tg::data::Dataset& train,
                        tg::data::Dataset& test) {
  try {
    train = tg::data::load_mnist(dir, "train", device);
    test = tg::data::load_mnist(dir, "test", device);
    return true;
  } catch (const tg::Error& e) {
    std::cerr << e.what() << "\n\n";
    if (dir == kFashionMnistDir)
      std::cerr
          << "Fashion-MNIST comes in Debian's dataset-fashion-mnist package:\n"
             "  sudo apt-get install dataset-fashion-mnist\n"
             "or pass --data DIR with MNIST-format files (train-images-idx3-ubyte[.gz], ...).\n";
    else
      std::cerr << "--data must name a folder with MNIST-format files: train-images-idx3-ubyte, "
                   "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
                   "(each may end in .gz).\n";
    return false;
  }
}

}  // namespace examples
