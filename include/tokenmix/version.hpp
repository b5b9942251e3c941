#pragma once
// The library version. Keep in sync with project(VERSION) in CMakeLists.txt
// (the CMake build checks that they agree).

#define TOKENMIX_VERSION_MAJOR 0
#define TOKENMIX_VERSION_MINOR 1
#define TOKENMIX_VERSION_PATCH 0
// Single comparable number: MAJOR * 10000 + MINOR * 100 + PATCH.
#define TOKENMIX_VERSION \
  (TOKENMIX_VERSION_MAJOR * 10000 + TOKENMIX_VERSION_MINOR * 100 + TOKENMIX_VERSION_PATCH)
