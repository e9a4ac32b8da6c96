//! One service running in this process, on its own thread, runtime and
//! telemetry.
//!
//! Each service runs on its own thread with its own Tokio runtime and its own
//! [`Telemetry`], installed as that thread's default `tracing` dispatcher.
//! That is what keeps three services in one process apart: each exports
//! spans with its own `service.name`, exactly as three processes would.

use std::{future::Future, net::SocketAddr, pin::Pin, thread::JoinHandle};

use anyhow::Context;
use service::{shutdown::CancellationToken, startup::Listening};
use telemetry::{Telemetry, TelemetryConfig};

/// A service's future, as built on its own thread.
pub type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;

/// One service running on its own thread and runtime.
pub struct RunningService {
    /// `gateway`, `checkout-service` or `stock-service`.
    pub name: &'static str,
    /// Its bound address.
    pub addr: SocketAddr,
    /// Its admin (fault-injection) address, if it has a separate one.
    pub admin_addr: Option<SocketAddr>,
    stop: CancellationToken,
    pub(crate) telemetry: Telemetry,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningService {
    /// Where the service serves `/metrics`, if its telemetry was given a
    /// `METRICS_ADDRESS`.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.telemetry.metrics_address()
    }

    /// Starts `build` on a new thread under its own telemetry; `build`
    /// returns the bound addresses and the future that serves until the token
    /// is cancelled.
    pub fn spawn<B, F>(
        name: &'static str,
        telemetry_config: TelemetryConfig,
        build: B,
    ) -> anyhow::Result<Self>
    where
        B: FnOnce(CancellationToken) -> F + Send + 'static,
        F: Future<Output = anyhow::Result<(Listening, RunFuture)>>,
    {
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let token = stop.clone();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(
            move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                // The exporter's gRPC channel lives on this runtime.
                let telemetry = runtime.block_on(async {
                    Telemetry::build_with_writer(&telemetry_config, log_writer(name))
                });
                let telemetry = match telemetry {
                    Ok(telemetry) => telemetry,
                    Err(error) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("{error}")));
                        return Ok(());
                    }
                };
                let _default = tracing::dispatcher::set_default(telemetry.dispatch());
                runtime.block_on(async {
                    let run = match build(token).await {
                        Ok((addrs, run)) => {
                            let _ = ready_tx.send(Ok((addrs, telemetry.clone())));
                            run
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return Ok(());
                        }
                    };
                    let result = run.await;
                    telemetry.shutdown().await;
                    result
                })
            },
        )?;
        let (listening, telemetry) = ready_rx
            .recv()
            .context("service thread ended before it was ready")?
            .with_context(|| format!("{name} did not start"))?;
        let addr = listening
            .http
            .or(listening.grpc)
            .context("the service listens on no address")?;
        Ok(Self {
            name,
            addr,
            admin_addr: listening.admin,
            stop,
            telemetry,
            thread: Some(thread),
        })
    }

    /// Exports every span this service has finished.
    pub fn flush(&self) {
        self.telemetry.force_flush();
    }

    /// Graceful stop: cancel, then wait for the thread to finish.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("{} panicked", self.name))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Service logs are discarded unless `E2E_LOGS=1`, which sends them to stderr.
fn log_writer(_service: &str) -> tracing_subscriber_writer::Writer {
    tracing_subscriber_writer::Writer(std::env::var_os("E2E_LOGS").is_some())
}

mod tracing_subscriber_writer {
    /// stderr or nothing.
    #[derive(Clone, Copy)]
    pub struct Writer(pub bool);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 {
                std::io::stderr().write(buf)
            } else {
                Ok(buf.len())
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            *self
        }
    }
}
