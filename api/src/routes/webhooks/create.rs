//! `POST /api/v1/webhooks`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where events are POSTed: an `https` URL whose host resolves to
    /// public addresses only (`http` and private addresses only where the
    /// server allows them, for local receivers).
    #[schema(
        required = true,
        max_length = 2048,
        example = "https://hooks.example.com/bourse"
    )]
    url: Option<String>,
    /// The events to receive.
    #[schema(value_type = EventTypes, required = true)]
    events: Option<Vec<String>>,
}

/// The endpoint just registered, with its signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookResponse,
    /// Signs every delivery (`Bourse-Signature`). Shown this once: keep it.
    #[schema(example = "whsec_5f2b...")]
    pub secret: String,
}

fn parse_events(raw: Option<&[String]>) -> Result<Vec<EventType>, String> {
    let raw = raw.ok_or("is required")?;
    if raw.is_empty() {
        return Err("must name at least one event".into());
    }
    let mut events = Vec::new();
    for name in raw {
        let event = EventType::parse(name).ok_or_else(|| {
            format!(
                "unknown event {name:?} (known: {})",
                EventType::names().join(", ")
            )
        })?;
        if events.contains(&event) {
            return Err(format!("names {name:?} twice"));
        }
        events.push(event);
    }
    Ok(events)
}

/// Register a webhook endpoint.
///
/// Events of the types named are POSTed to `url` as they happen, signed
/// with the secret answered here (shown once). The URL's host must resolve
/// to public addresses only: loopback, private, link-local, multicast and
/// cloud metadata addresses are refused (400 `validation_failed`), and
/// checked again at every delivery. At most 10 endpoints per user (422
/// `limit_exceeded`).
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    security(("bearer" = []), ("cookie" = [])),
    request_body = WebhookRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "The endpoint, with its signing secret", body = CreatedWebhook),
        (status = 400, description = "A bad URL or event list, or a host that does not resolve to public addresses (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Too many endpoints (`limit_exceeded`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_webhook(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    ApiJson(body): ApiJson<WebhookRequest>,
) -> Result<Response, ApiError> {
    let allow_private = state.config.webhooks.allow_private_addresses;
    let mut errors = BTreeMap::new();
    let target = match body.url.as_deref() {
        None => {
            errors.insert("url".to_owned(), "is required".to_owned());
            None
        }
        Some(raw) => target::parse(raw, allow_private)
            .map_err(|why| errors.insert("url".to_owned(), why))
            .ok(),
    };
    let events = parse_events(body.events.as_deref())
        .map_err(|why| errors.insert("events".to_owned(), why))
        .ok();
    // Only a well-formed URL is resolved.
    if let Some(target) = &target
        && let Err(refused) = address::resolve(&target.host, target.port, allow_private).await
    {
        errors.insert("url".to_owned(), refused.to_string());
    }
    let (Some(target), Some(events), true) = (target, events, errors.is_empty()) else {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    };
    let mut conn = state.conn().await?;
    let endpoint = endpoints::create(
        &mut conn,
        state.config.webhooks.max_per_user,
        NewEndpoint {
            user_id: user.id,
            url: target.url.to_string(),
            events,
        },
    )
    .await?;
    tracing::info!(user = %user.id, webhook = %endpoint.id, "webhook endpoint registered");
    let secret = endpoint.secret.clone();
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedWebhook {
            endpoint: endpoint.into(),
            secret,
        }),
    )
        .into_response())
}
