// Catch2 for test files that also include LibTorch. LibTorch's headers include
// glog, whose CHECK aborts the process on failure; whichever of the two
// headers came last would own CHECK. glog is included first here and its
// CHECK dropped, so every test gets Catch's CHECK (a failure reported, the test
// going on), whatever the order of the test's other includes: glog's include
// guard keeps a later LibTorch header from defining it again.
#pragma once

#include <glog/logging.h>
#undef CHECK

#include <catch2/catch.hpp>
