// The files of web/ (the buddy-list page), compiled into the binary by
// cmake/embed_web.cmake, and served by the Router under "/".
#ifndef PRESENCE_API_WEB_ASSETS_H_
#define PRESENCE_API_WEB_ASSETS_H_

#include <string_view>
#include <vector>

namespace presence::api {

struct WebAsset {
  std::string_view path;  // "/index.html"
  std::string_view content_type;
  std::string_view body;
};

const std::vector<WebAsset>& WebAssets();

}  // namespace presence::api

#endif  // PRESENCE_API_WEB_ASSETS_H_
