//! The hosted API with login, as the login tests need it: one PostgreSQL database
//! (`common::pg`), the Fly fake, the real OIDC provider (`common::oidc`) and `n` instances of
//! `catty api --database-url` configured with it.

use catty::protocol::api::{DeviceAuthorization, LoggedIn};
use hyper::StatusCode;

use super::api::fly::FlyDaemon;
use super::api::{Answer, ApiClient};
use super::fly::FakeFly;
use super::oidc::{CLIENT_ID, Oidc};
use super::pg::{self, TestDb};

pub const CONNECT_KEY: &str = "test-connect-key-0123456789abcdef-0123456789";

pub struct Hosted {
    pub instances: Vec<FlyDaemon>,
    pub oidc: Oidc,
    pub db: TestDb,
    pub fake: FakeFly,
}

impl Hosted {
    /// `n` instances; `oidc_env` configures the provider (`CATTY_TEST_OIDC_*`).
    pub async fn start(n: usize, oidc_env: &[(&str, &str)]) -> Hosted {
        let fake = crate::fly_provider::support::fake();
        let oidc = Oidc::start_with(oidc_env);
        let db = pg::database().await;
        let env = [
            ("CATTY_DATABASE_URL", db.url.as_str()),
            ("CATTY_CONNECT_KEY", CONNECT_KEY),
            ("CATTY_OIDC_ISSUER", oidc.issuer.as_str()),
            ("CATTY_OIDC_CLIENT_ID", CLIENT_ID),
        ];
        let instances = (0..n).map(|_| FlyDaemon::start(&fake, &env)).collect();
        Hosted {
            instances,
            oidc,
            db,
            fake,
        }
    }

    /// Instance `i`'s URL, as `CATTY_API_URL` names it.
    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.instances[i].addr)
    }

    /// A client of instance `i` with `token`.
    pub fn client(&self, i: usize, token: &str) -> ApiClient {
        ApiClient {
            addr: self.instances[i].addr,
            token: token.to_string(),
        }
    }

    /// `POST /v1/auth/device` on instance `i`.
    pub async fn device(&self, i: usize) -> DeviceAuthorization {
        let answer = self
            .client(i, "")
            .call("POST", "/v1/auth/device", "{}")
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        serde_json::from_str(&answer.body).unwrap()
    }

    /// `POST /v1/auth/token` on instance `i`.
    pub async fn poll(&self, i: usize, device_code: &str) -> Answer {
        let body = serde_json::json!({"device_code": device_code, "name": "test"});
        (self.client(i, ""))
            .call("POST", "/v1/auth/token", &body.to_string())
            .await
    }

    /// A whole login of `login` through instance `i`, as a client that keeps the RFC's
    /// interval: its catty token.
    pub async fn login(&self, i: usize, login: &str) -> LoggedIn {
        let auth = self.device(i).await;
        self.oidc.approve(&auth.user_code, login).await;
        let interval = std::time::Duration::from_secs(auth.interval);
        let deadline = std::time::Instant::now() + super::DEADLINE;
        loop {
            // The RFC's pace: a poll sooner would be told `slow_down`.
            tokio::time::sleep(interval).await;
            let answer = self.poll(i, &auth.device_code).await;
            if answer.status == StatusCode::OK {
                return serde_json::from_str(&answer.body).unwrap();
            }
            assert_eq!(
                answer.json()["error"],
                "authorization_pending",
                "{}",
                answer.body
            );
            assert!(std::time::Instant::now() < deadline, "no token in time");
        }
    }
}
