//! The media worker, origin API, cache purge API and alert webhook stand-ins (real HTTP servers from
//! `babybook-ops`), run on a background runtime so they outlive any one test.

use std::sync::OnceLock;

use tokio::task::JoinHandle;

/// The runtime the stand-ins and async fixtures run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

#[derive(Clone)]
enum Kind {
    Media { media_token: Option<String> },
    Origin,
    Purge { token: String },
    Webhook { secret: String },
    SqlApi { token: String },
}

pub struct StandIn {
    pub port: u16,
    kind: Kind,
    task: Option<JoinHandle<()>>,
}

impl StandIn {
    pub fn media(port: u16, media_token: Option<String>) -> StandIn {
        let mut s = StandIn {
            port,
            kind: Kind::Media { media_token },
            task: None,
        };
        s.start();
        s
    }

    pub fn origin(port: u16) -> StandIn {
        let mut s = StandIn {
            port,
            kind: Kind::Origin,
            task: None,
        };
        s.start();
        s
    }

    /// The cache purge API, accepting only `token`; its base URL is `url()` + `/client/v4`.
    pub fn purge(port: u16, token: String) -> StandIn {
        let mut s = StandIn {
            port,
            kind: Kind::Purge { token },
            task: None,
        };
        s.start();
        s
    }

    /// The alert webhook, accepting POSTs at `/hook/<secret>` only.
    pub fn webhook(port: u16, secret: String) -> StandIn {
        let mut s = StandIn {
            port,
            kind: Kind::Webhook { secret },
            task: None,
        };
        s.start();
        s
    }

    /// The Analytics Engine SQL API, accepting only `token`; its base URL is `url()` + `/client/v4`.
    pub fn sql_api(port: u16, token: String) -> StandIn {
        let mut s = StandIn {
            port,
            kind: Kind::SqlApi { token },
            task: None,
        };
        s.start();
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port (a restarted media stand-in starts with empty state).
    pub fn start(&mut self) {
        if self.task.is_some() {
            return;
        }
        let (port, kind) = (self.port, self.kind.clone());
        let listener = runtime().block_on(async move {
            for _ in 0..50 {
                if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    return l;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("stand-in port {port} stays busy");
        });
        let router = match kind {
            Kind::Media { media_token } => babybook_ops::standin::media::router(media_token),
            Kind::Origin => babybook_ops::standin::origin::router(),
            Kind::Purge { token } => babybook_ops::standin::purge::router(Some(token)),
            Kind::Webhook { secret } => babybook_ops::standin::webhook::router(secret),
            Kind::SqlApi { token } => babybook_ops::standin::sql_api::router(Some(token)),
        };
        self.task = Some(runtime().spawn(async move {
            let _ = axum_serve(listener, router).await;
        }));
    }

    /// Stops the server: connections are refused until `start`.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = runtime().block_on(task);
        }
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: babybook_ops::standin::Router) -> std::io::Result<()> {
    babybook_ops::standin::serve_on(listener, router).await
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
    }
}
