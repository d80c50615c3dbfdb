//! A strict in-process fake of the part of Stripe's API that billing calls and localstripe
//! lacks (reference/hosted.md §2.5: its PyPI build has no Checkout Sessions, no prices, no
//! idempotency keys and the pre-basil Subscription shape): `POST /v1/customers`,
//! `POST /v1/checkout/sessions`, `GET /v1/subscriptions/{id}`. It refuses what Stripe refuses
//! (a wrong secret key, an unknown or missing parameter, an unknown customer or price, an
//! idempotency key reused with other parameters) and replays an idempotent request's first
//! answer. The test plays the customer (`complete`, `set`) and can take it off the network
//! (`set_down`: connections are dropped unanswered). Its own runtime on its own thread.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

/// A form's fields by name, as Stripe reads `a[b][c]=v`.
type Form = BTreeMap<String, String>;

#[derive(Default)]
struct State {
    customers: Vec<String>,
    /// Checkout Sessions: id → (customer, subscription metadata).
    sessions: HashMap<String, (String, Form)>,
    subscriptions: HashMap<String, Value>,
    /// Idempotency key → (method and path, parameters, the first answer).
    keys: HashMap<String, (String, Form, StatusCode, Value)>,
    /// Every `Stripe-Version` header received, in order.
    versions: Vec<Option<String>>,
    /// Subscriptions fetched (`GET /v1/subscriptions/{id}` answered).
    fetches: usize,
}

pub struct FakeStripe {
    pub addr: SocketAddr,
    pub secret_key: String,
    pub price: String,
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Shared {
    key: String,
    price: String,
    state: Arc<Mutex<State>>,
}

impl FakeStripe {
    pub fn start() -> FakeStripe {
        let secret_key = format!("sk_test_{}", super::client_id());
        let price = format!("price_{}", super::client_id());
        let state = Arc::new(Mutex::new(State::default()));
        let down = Arc::new(AtomicBool::new(false));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = Arc::new(Shared {
            key: secret_key.clone(),
            price: price.clone(),
            state: state.clone(),
        });
        let down2 = down.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, shared, down2, stopped));
        });
        FakeStripe {
            addr,
            secret_key,
            price,
            state,
            down,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Customers made.
    pub fn customers(&self) -> usize {
        self.state.lock().unwrap().customers.len()
    }

    /// The `Stripe-Version` of every request so far.
    pub fn versions(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().versions.clone()
    }

    /// Subscriptions fetched so far.
    pub fn fetches(&self) -> usize {
        self.state.lock().unwrap().fetches
    }

    /// Takes Stripe off the network (every connection dropped unanswered), or back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The customer pays in the Checkout page at `url`: an active subscription, its id.
    pub fn complete(&self, url: &str) -> String {
        let id = url.rsplit('/').next().unwrap().to_string();
        let mut state = self.state.lock().unwrap();
        let (customer, metadata) = state.sessions.get(&id).expect("a session of ours").clone();
        let metadata: serde_json::Map<String, Value> = (metadata.into_iter())
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let sub = format!("sub_{}", super::client_id());
        let now = catty::clock::unix_now() as i64;
        let object = json!({
            "id": sub, "object": "subscription", "customer": customer, "status": "active",
            "cancel_at_period_end": false, "metadata": metadata,
            "items": {"object": "list", "data": [{
                "id": format!("si_{}", super::client_id()), "object": "subscription_item",
                "current_period_start": now, "current_period_end": now + 30 * 86400,
                "price": {"id": self.price, "object": "price"}, "quantity": 1,
            }]},
        });
        state.subscriptions.insert(sub.clone(), object);
        sub
    }

    /// Changes subscription `id` as Stripe would: its status and its period's end.
    pub fn set(&self, id: &str, status: &str, period_end: i64) {
        let mut state = self.state.lock().unwrap();
        let sub = state.subscriptions.get_mut(id).expect("a subscription");
        sub["status"] = json!(status);
        sub["items"]["data"][0]["current_period_end"] = json!(period_end);
    }

    /// Subscription `id` as `GET` answers it.
    pub fn subscription(&self, id: &str) -> Value {
        self.state.lock().unwrap().subscriptions[id].clone()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    down: Arc<AtomicBool>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted.unwrap().0,
        };
        if down.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let (shared, down) = (shared.clone(), down.clone());
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (shared, down) = (shared.clone(), down.clone());
                async move {
                    // A kept-alive connection is cut too: an error closes it unanswered.
                    match down.load(Ordering::SeqCst) {
                        true => Err("down"),
                        false => Ok(answer(&shared, req).await),
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = (hyper::server::conn::http1::Builder::new())
                .serve_connection(io, service)
                .await;
        });
    }
}

async fn answer(shared: &Shared, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let header =
        |name: &str| (parts.headers.get(name)).map(|v| v.to_str().unwrap_or_default().to_string());
    shared
        .state
        .lock()
        .unwrap()
        .versions
        .push(header("stripe-version"));
    let (status, body) = if header("authorization") != Some(format!("Bearer {}", shared.key)) {
        error(StatusCode::UNAUTHORIZED, "Invalid API Key provided")
    } else {
        let body = body.collect().await.unwrap().to_bytes();
        let form = parse_form(&String::from_utf8_lossy(&body));
        let route = format!("{} {}", parts.method, parts.uri.path());
        match header("idempotency-key") {
            Some(key) if parts.method == hyper::Method::POST => {
                idempotent(shared, &key, &route, form)
            }
            _ => handle(shared, &route, form),
        }
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// Stripe's idempotency: the first answer again for the same key and parameters, an
/// `idempotency_error` for other parameters; nothing saved when validation failed (400).
fn idempotent(shared: &Shared, key: &str, route: &str, form: Form) -> (StatusCode, Value) {
    let saved = shared.state.lock().unwrap().keys.get(key).cloned();
    if let Some((first_route, first_form, status, body)) = saved {
        if first_route != route || first_form != form {
            return error_of(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with.",
            );
        }
        return (status, body);
    }
    let (status, body) = handle(shared, route, form.clone());
    if status != StatusCode::BAD_REQUEST {
        let entry = (route.to_string(), form, status, body.clone());
        shared
            .state
            .lock()
            .unwrap()
            .keys
            .insert(key.to_string(), entry);
    }
    (status, body)
}

fn handle(shared: &Shared, route: &str, form: Form) -> (StatusCode, Value) {
    if let Some(id) = route.strip_prefix("GET /v1/subscriptions/") {
        let mut state = shared.state.lock().unwrap();
        state.fetches += 1;
        return match state.subscriptions.get(id) {
            Some(sub) => (StatusCode::OK, sub.clone()),
            None => missing(&format!("No such subscription: '{id}'")),
        };
    }
    match route {
        "POST /v1/customers" => create_customer(shared, form),
        "POST /v1/checkout/sessions" => create_session(shared, form),
        _ => missing(&format!("Unrecognized request URL ({route})")),
    }
}

fn create_customer(shared: &Shared, form: Form) -> (StatusCode, Value) {
    if let Some(bad) = unknown(&form, &["email", "name"], &["metadata["]) {
        return bad;
    }
    let id = format!("cus_{}", super::client_id());
    shared.state.lock().unwrap().customers.push(id.clone());
    (StatusCode::OK, json!({"id": id, "object": "customer"}))
}

fn create_session(shared: &Shared, form: Form) -> (StatusCode, Value) {
    let exact = [
        "mode",
        "customer",
        "line_items[0][price]",
        "line_items[0][quantity]",
        "client_reference_id",
        "success_url",
        "cancel_url",
    ];
    if let Some(bad) = unknown(
        &form,
        &exact,
        &["subscription_data[metadata][", "metadata["],
    ) {
        return bad;
    }
    let get = |name: &str| form.get(name).map(String::as_str);
    for required in ["mode", "success_url"] {
        if get(required).is_none() {
            return invalid(&format!("Missing required param: {required}."));
        }
    }
    if get("mode") == Some("subscription") && get("line_items[0][price]").is_none() {
        return invalid("line_items is required in subscription mode.");
    }
    if let Some(price) = get("line_items[0][price]").filter(|p| *p != shared.price) {
        return missing(&format!("No such price: '{price}'"));
    }
    let customer = get("customer").unwrap_or_default().to_string();
    let mut state = shared.state.lock().unwrap();
    if !state.customers.contains(&customer) {
        return missing(&format!("No such customer: '{customer}'"));
    }
    let metadata: Form = (form.iter())
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("subscription_data[metadata][")?;
            Some((name.trim_end_matches(']').to_string(), v.clone()))
        })
        .collect();
    let id = format!("cs_test_{}", super::client_id());
    state.sessions.insert(id.clone(), (customer, metadata));
    let url = format!("https://checkout.stripe.com/c/pay/{id}");
    (
        StatusCode::OK,
        json!({"id": id, "object": "checkout.session", "url": url}),
    )
}

/// A parameter Stripe does not know for this call.
fn unknown(form: &Form, exact: &[&str], prefixes: &[&str]) -> Option<(StatusCode, Value)> {
    let known =
        |k: &String| exact.contains(&k.as_str()) || prefixes.iter().any(|p| k.starts_with(p));
    let bad = form.keys().find(|k| !known(k))?;
    Some(invalid(&format!("Received unknown parameter: {bad}")))
}

fn invalid(message: &str) -> (StatusCode, Value) {
    error(StatusCode::BAD_REQUEST, message)
}

fn missing(message: &str) -> (StatusCode, Value) {
    error(StatusCode::NOT_FOUND, message)
}

fn error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    error_of(status, "invalid_request_error", message)
}

fn error_of(status: StatusCode, kind: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": {"type": kind, "message": message}}))
}

fn parse_form(text: &str) -> Form {
    (text.split('&'))
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let decode = |s: &str| catty::protocol::percent::decode(s).expect("percent-encoded");
            (decode(k), decode(v))
        })
        .collect()
}
