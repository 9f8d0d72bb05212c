// tapegrad/tapegrad.h — everything: tensors, the tape, ops, functional primitives and gradcheck.
#pragma once

#include "tapegrad/backend.h"
#include "tapegrad/dtype.h"
#include "tapegrad/error.h"
#include "tapegrad/functional.h"
#include "tapegrad/gradcheck.h"
#include "tapegrad/image.h"
#include "tapegrad/ops.h"
#include "tapegrad/random.h"
#include "tapegrad/shape.h"
#include "tapegrad/tape.h"
#include "tapegrad/tensor.h"
