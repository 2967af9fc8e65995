//! Every AWS SDK call counted by operation and error, for the metrics
//! (`ecr_portal_aws_calls_total`): an interceptor on each ECR and STS client.
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The interceptor.
#[derive(Debug, Clone, Copy)]
pub struct CountAwsCalls;

impl Intercept for CountAwsCalls {
    fn name(&self) -> &'static str {
        "CountAwsCalls"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or_else(|| "unknown".to_string(), |m| m.name().to_string());
        let error = match context.output_or_error() {
            Some(Err(_)) => {
                context.response().map_or_else(|| "network".to_string(), |r| format!("http_{}", r.status().as_u16()))
            }
            _ => "none".to_string(),
        };
        metrics::counter!("ecr_portal_aws_calls_total", "operation" => operation, "error" => error).increment(1);
        Ok(())
    }
}
