//! Token counts (`count_tokens`): asked of a source of the client's protocol, else estimated.

use std::borrow::Cow;

use serde_json::Value;

use super::attempt::refreshed_headers;
use super::classify::key_refused;
use super::{
    Call, ClientWriter, Env, Outcome, Served, given_up, respond_error, served_by, unwanted,
};
use crate::error::Error;
use crate::registry::Settings;
use crate::upstream;

/// `POST /v1/messages/count_tokens` and Gemini's `:countTokens`: asked of the first
/// target of the client's protocol that answers, those cooling down last, each within
/// the first-token deadline (a count is quick, and a silent source must not hold the
/// client up); without one, an estimate (about four bytes a token, marked by
/// `x-routeplane-estimate`), because a 404 would break clients that count before every
/// request.
pub fn count_tokens(
    env: &Env,
    settings: &Settings,
    call: &Call<'_>,
    out: &mut ClientWriter,
) -> Served {
    let mut served = Served::default();
    let (targets, _) = env.cooldown.order(call.targets);
    let wait = settings
        .first_token_timeout
        .min(settings.first_byte_timeout);
    let mut logins = env.auth.logins_of(&targets);
    for target in targets.iter().filter(|t| t.protocol == call.inbound) {
        let Some(path) = target.protocol.count_tokens_endpoint(target.model()) else {
            continue;
        };
        served.attempts += 1;
        let mut login = logins.take(&target.provider.id);
        let headers = env.auth.headers(target, login.as_mut());
        let Ok(mut headers) = headers else {
            logins.put(login);
            continue;
        };
        headers.push(("content-type".into(), "application/json".into()));
        upstream::overlay(&mut headers, &call.forward);
        let at = (&target.provider.base, &path[..]);
        let mut body = target.protocol.passthrough_body(call.body, target.model());
        // Counted as the request will be sent: without what Routeplane wrote for itself.
        if target.protocol.must_mend(call.body, &target.source())
            && let Ok(mut v) = serde_json::from_slice::<Value>(&body)
        {
            target.protocol.mend(&mut v, &target.source());
            body = Cow::Owned(v.to_string().into_bytes());
        }
        let gone = || unwanted(env, out);
        let mut sent = env.client.post_at(at, &headers, &body, wait, &gone);
        // A login's token refused is refreshed once and the count asked again, as a
        // request's would be: else a count before each request answers 401 until one
        // of those requests happens to refresh it.
        if matches!(&sent, Ok(r) if r.status == 401)
            && env.auth.refresh_after_401(target, login.as_mut())
            && refreshed_headers(env, call, target, &mut login, &mut headers)
        {
            sent = env.client.post_at(at, &headers, &body, wait, &gone);
        }
        logins.put(login);
        let reply = match sent {
            Ok(reply) => reply,
            Err(upstream::SendError::Abandoned) => return count_given_up(env, call, served, out),
            Err(_) => continue,
        };
        let status = reply.status;
        if status >= 500 || status == 429 || status == 404 {
            continue;
        }
        let mut bytes = match reply.read_all(settings.limits.max_response_bytes, &gone) {
            // A refusal may quote the key it was sent (OpenAI's "Incorrect API key").
            Ok(bytes) if !(200..300).contains(&status) => {
                upstream::without_credentials(&bytes, &headers).unwrap_or(bytes)
            }
            Ok(bytes) => bytes,
            Err(upstream::BodyError::Abandoned) => return count_given_up(env, call, served, out),
            Err(_) => continue,
        };
        // Routeplane's own key refused, said as the other endpoints say it: passed on,
        // Claude Code blames its user's login. The words are those masked above.
        if status == 401 {
            let said = crate::protocol::upstream_error_message(&bytes);
            let told = key_refused(env, target, &said);
            bytes = call.inbound.error_body(401, &told);
            served.said.push((
                target.label().to_string(),
                crate::log::printable(&told, 200),
            ));
        }
        let by = served_by(target, served.attempts);
        let _ = out.respond_served(status, "application/json", &[], Some(by), &bytes);
        served.status = status;
        served.served_by = Some(target.shared_label());
        return served;
    }
    let text_bytes = call.body.with_model("").len();
    let estimate = call.inbound.token_estimate(text_bytes.div_ceil(4));
    let headers = vec![("x-routeplane-estimate".to_string(), "true".to_string())];
    let _ = out.respond(
        200,
        "application/json",
        &headers,
        estimate.to_string().as_bytes(),
    );
    served.status = 200;
    served
}

/// Ends a count whose answer was [`unwanted`]: a 503 when a stop cut it short, else
/// the client left (499).
fn count_given_up(
    env: &Env,
    call: &Call<'_>,
    mut served: Served,
    out: &mut ClientWriter,
) -> Served {
    served.status = match given_up(env) {
        Outcome::Stopped if !out.client_gone() => {
            let again = [("retry-after".to_string(), "1".to_string())];
            respond_error(call.inbound, 503, &Error::Stopping, &again, out);
            503
        }
        _ => 499,
    };
    served
}
