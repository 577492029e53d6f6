/* The clouds' logs ops (provider.h, `logs`), one file each, listed in
 * their cloud's ops table. Each reads what it needs from io->infra_id,
 * io->job and io->endpoint alone, never the run's prepared state. */
#ifndef PP_PROVIDERS_LOGS_H
#define PP_PROVIDERS_LOGS_H

#include "providers/provider.h"

/* CloudWatch Logs, the awslogs stream of the task's container (ecs_logs.c). */
int pp_ecs_logs(struct pp_run_io *io, struct pp_error *err);
/* Cloud Logging entries of the execution (cloudrun_logs.c). */
int pp_cloudrun_logs(struct pp_run_io *io, struct pp_error *err);
/* ACI's container logs endpoint (aci_logs.c). */
int pp_aci_logs(struct pp_run_io *io, struct pp_error *err);
/* Modal's SandboxGetLogs stream, stdout and stderr (modal_logs.c). */
int pp_modal_logs(struct pp_run_io *io, struct pp_error *err);

#endif
