// tapegrad/tapegrad.h — everything: tensors, the tape, ops, functional primitives, gradcheck,
// nn, optim, data, images.
#pragma once

#include "tapegrad/backend.h"
#include "tapegrad/checkpoint.h"
#include "tapegrad/data.h"
#include "tapegrad/dtype.h"
#include "tapegrad/error.h"
#include "tapegrad/functional.h"
#include "tapegrad/gradcheck.h"
#include "tapegrad/image.h"
#include "tapegrad/nn.h"
#include "tapegrad/ops.h"
#include "tapegrad/optim.h"
#include "tapegrad/random.h"
#include "tapegrad/shape.h"
#include "tapegrad/state_dict.h"
#include "tapegrad/tape.h"
#include "tapegrad/tensor.h"
