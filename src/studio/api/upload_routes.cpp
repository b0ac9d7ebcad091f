#include "studio/api/upload_routes.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/clock.h"
#include "common/strings.h"
#include "studio/api/responses.h"
#include "studio/db_worker.h"
#include "studio/studio.h"
#include "studio/transactions.h"
#include "studio/uploads.h"

namespace sw::studio::api {

using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

namespace {

json upload_json(const Studio& s, const HttpRequest& request, const store::UploadRecord& upload) {
  json body = {{"id", upload.id},
               {"sha256", upload.sha256},
               {"bytes", upload.bytes},
               {"contentType", upload.content_type},
               {"filename", upload.filename},
               {"url", s.upload_url(request, upload.id)},
               {"createdAt", format_rfc3339_millis(upload.created_at)},
               {"jobId", upload.job_id ? json(*upload.job_id) : json()}};
  // Kept until its job ends once a job took it; else until the retention runs out.
  body["expiresAt"] = upload.job_id ? json() : json(format_rfc3339_millis(s.upload_expiry(upload)));
  return body;
}

}  // namespace

void UploadRoutes::handle(RouteId id, HttpRequest request, const std::vector<std::string>& p,
                          const net::Responder& responder) {
  switch (id) {
    case RouteId::UploadCreate: return create(std::move(request), responder);
    case RouteId::UploadGet: return get(request, p[0], responder);
    case RouteId::UploadDelete: return remove(request, p[0], responder);
    case RouteId::UploadDownload: return download(p[0], responder);
    default: break;
  }
  responder.send(refuse(Refusal::NotFound, "no route for " + request.path));
}

void UploadRoutes::create(HttpRequest request, const net::Responder& responder) {
  // The router admitted the bearer: an API key (its id is the owner) or the admin token.
  const auto token = request.bearer_token();
  auto owner = token ? s_.registry().bearer_owner(*token) : std::nullopt;
  if (!owner) {
    responder.send(refuse(Refusal::Unauthorized, "unknown API key"));
    return;
  }
  const auto* header = request.header("content-type");
  std::string content_type = header != nullptr ? *header : std::string();
  auto filename = request.query_param("filename").value_or("");
  std::string bytes;
  if (ascii_lower(content_type).starts_with("multipart/form-data")) {
    auto parts = net::parse_form_data(content_type, request.body);
    if (!parts) {
      responder.send(invalid("invalid_upload", parts.error().message));
      return;
    }
    const net::FormPart* file = nullptr;
    for (const auto& part : *parts) {
      if (part.name != "file") {
        continue;  // other fields (an OpenAI client's `model`, …) are not the upload
      }
      if (file != nullptr) {
        responder.send(invalid("invalid_upload", "multipart body: more than one `file` part"));
        return;
      }
      file = &part;
    }
    if (file == nullptr) {
      responder.send(invalid("invalid_upload", "multipart body: no `file` part"));
      return;
    }
    bytes.assign(file->data);
    content_type = file->content_type;
    if (filename.empty() && file->filename) {
      filename = *file->filename;
    }
    request.body = std::string();  // the part is copied: one copy in memory at a time
  } else {
    bytes = std::move(request.body);
  }
  if (bytes.empty()) {
    responder.send(invalid("invalid_upload", "the upload is empty"));
    return;
  }
  s_.store_upload(
      std::move(bytes), std::move(content_type), std::move(filename), std::move(*owner),
      [this, responder, request = std::move(request)](Result<store::UploadRecord> stored) {
        if (!stored) {
          responder.send(error_response(stored.error()));
          return;
        }
        responder.send(ok_json(upload_json(s_, request, *stored), 201));
      });
}

void UploadRoutes::get(const HttpRequest& request, const std::string& id,
                       const net::Responder& responder) {
  if (!uploads::valid_upload_id(id)) {
    responder.send(refuse(Refusal::NotFound, "no upload " + id));
    return;
  }
  s_.database().call<std::optional<store::UploadRecord>>(
      [id](store::StudioStore& st) { return st.find_upload(id); },
      [this, responder, request, id](Result<std::optional<store::UploadRecord>> upload) {
        const auto token = request.bearer_token();
        const auto confined = token ? s_.registry().confined_owner(*token) : std::nullopt;
        if (!upload) {
          responder.send(error_response(upload.error()));
        } else if (!*upload || (confined && (*upload)->owner != *confined)) {
          responder.send(refuse(Refusal::NotFound, "no upload " + id));
        } else {
          responder.send(ok_json(upload_json(s_, request, **upload)));
        }
      });
}

void UploadRoutes::remove(const HttpRequest& request, const std::string& id,
                          const net::Responder& responder) {
  if (!uploads::valid_upload_id(id)) {
    responder.send(refuse(Refusal::NotFound, "no upload " + id));
    return;
  }
  const auto token = request.bearer_token();
  auto confined = token ? s_.registry().confined_owner(*token) : std::nullopt;
  s_.database().call<store::UploadRecord>(
      [id, confined](store::StudioStore& st) { return tx::delete_upload(st, id, confined); },
      [this, responder, id](Result<store::UploadRecord> deleted) {
        if (!deleted) {
          responder.send(error_response(deleted.error()));
          return;
        }
        // The row is gone: nothing hands the file out any more. Removed off the loop; a failure
        // leaves a file no row names (logged), never a row without its file.
        boost::asio::post(s_.blocking_pool(), [dir = s_.uploads_dir(), id] {
          if (auto gone = uploads::remove_upload_file(dir, id); !gone) {
            logger().warn("upload.remove_failed",
                          {{"upload_id", id}, {"error", gone.error().message}});
          }
        });
        responder.send(ok_json({{"id", id}, {"deleted", true}}));
      });
}

void UploadRoutes::download(const std::string& id, const net::Responder& responder) {
  // The router checked the bearer against every approved worker's token.
  if (!uploads::valid_upload_id(id)) {
    responder.send(refuse(Refusal::NotFound, "no upload " + id));
    return;
  }
  s_.database().call<std::optional<store::UploadRecord>>(
      [id](store::StudioStore& st) { return st.find_upload(id); },
      [this, responder, id](Result<std::optional<store::UploadRecord>> upload) {
        if (!upload) {
          responder.send(error_response(upload.error()));
          return;
        }
        if (!*upload) {
          responder.send(refuse(Refusal::NotFound, "no upload " + id));
          return;
        }
        responder.send(file_answer(s_.uploads_dir() / id, (*upload)->content_type, "upload " + id,
                                   "--uploads-dir", s_.config().database_uri.has_value()));
      });
}

}  // namespace sw::studio::api
