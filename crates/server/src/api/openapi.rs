//! The OpenAPI document, generated from the handlers and types themselves.

use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{agent, backups, cluster, console, images, migrations, nodes, operations, vms};

#[derive(OpenApi)]
#[openapi(
    info(title = "NovaCron API", description = "Control plane of the NovaCron distributed hypervisor. Every call except health, cluster/ca and this document needs `Authorization: Bearer <token>`."),
    paths(
        super::health, super::cluster_ca,
        vms::create, vms::list, vms::show, vms::start, vms::stop, vms::reboot, vms::pause, vms::resume, vms::delete,
        console::log, console::attach,
        operations::show, operations::list,
        nodes::list, nodes::show, nodes::action, nodes::delete,
        images::list, images::show, images::build_tiny, images::import, images::download, images::delete,
        agent::register, agent::heartbeat, agent::desired_vms, agent::report_status,
        cluster::status, cluster::storage_list, cluster::storage_add, cluster::storage_delete,
        backups::repo_add, backups::repo_list, backups::list, backups::show, backups::create, backups::restore,
        backups::verify, backups::prune, backups::gc, backups::sync, backups::schedule_set, backups::schedule_list,
        backups::schedule_delete, backups::agent_update_operation,
        migrations::start, migrations::list, migrations::show, migrations::cancel, migrations::evacuation_plan,
        migrations::agent_report, migrations::agent_commit, migrations::agent_abort,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// `GET /api/v1/openapi.json`
pub async fn document() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}
