#pragma once
// The studio's HTTP routes by name: the router (router.cpp) matches a request to one and hands it
// to the file of its audience (worker_routes, client_routes, admin_routes).

namespace sw::studio::api {

enum class RouteId {
  RegisterRequest,
  RegisterPoll,
  Complete,
  JobsCreate,
  JobsList,
  JobGet,
  JobResult,
  JobCancel,
  Events,
  ModelsList,
  ModelsCreate,
  ModelGet,
  ModelPut,
  ModelPatch,
  ModelDelete,
  WorkersList,
  WorkersPending,
  WorkerApprove,
  WorkerReject,
  WorkerDelete,
  WorkerLogs,
  KeysList,
  KeysCreate,
  KeyDelete,
  KeyPatch,  // issue 20: scope, quota, name
  KeyUsage,  // issue 20: a key's usage per day (admin)
  OwnUsage,  // issue 20: the calling key's usage and quota
  WhoAmI,    // issue 21: the calling bearer's scope (the dashboard shows what it may do)
  AdminTokenRotate,
  JoinTokensList,  // issue 22: tokens that approve a worker's registration at once
  JoinTokenCreate,
  JoinTokenRevoke,
  Metrics,
  Stats,  // issue 21: /metrics's figures as JSON, for the dashboard
  Health,
  // OpenAI-compatible (issue 20): openai_routes.h
  OpenAiModels,
  OpenAiModel,
  OpenAiChat,
  OpenAiImages,
  OpenAiSpeech,
  OpenAiTranscriptions,
  UploadCreate,
  UploadGet,
  UploadDelete,
  UploadDownload,
  // The web dashboard (issue 21): dashboard_routes.h
  DashboardIndex,
  DashboardAsset,
};

}  // namespace sw::studio::api
