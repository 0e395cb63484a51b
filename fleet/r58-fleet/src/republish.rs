//! The fleet's retained documents, published again whenever its publishing connection comes
//! up: every device's desired config and every started, unfinished OTA job. A broker that
//! lost its retained store (its persistence file gone, a crash between two saves, a new
//! broker) serves them again; devices ignore what they already have (a desired version they
//! applied, a job id they know).

use std::sync::Arc;

use rumqttc::QoS;

use crate::mqtt::publisher::Publisher;
use tokio::sync::Notify;

use crate::db::{Db, DeviceFilter};
use crate::ota::rollout::Driver;

/// Waits for each (re)connection of the publishing connection and publishes everything again.
pub async fn run(db: Db, mqtt: Publisher, driver: Option<Driver>, connected: Arc<Notify>) {
    loop {
        connected.notified().await;
        let desired = match desired(&db, &mqtt).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "publishing the desired configs again");
                continue;
            }
        };
        let jobs = match &driver {
            Some(d) => match d.republish().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %r58_log::error_chain(&e), "publishing the OTA jobs again");
                    0
                }
            },
            None => 0,
        };
        tracing::info!(desired, jobs, "retained documents published again");
    }
}

/// Every device's desired config that was ever set, as the API published it.
async fn desired(db: &Db, mqtt: &Publisher) -> Result<usize, String> {
    let devices = db
        .devices(&DeviceFilter::default())
        .await
        .map_err(|e| r58_log::error_chain(&e))?;
    let mut n = 0;
    for d in devices.iter().filter(|d| d.desired_version > 0) {
        mqtt.publish(
            r58_proto::twin_desired(&d.id),
            QoS::AtLeastOnce,
            true,
            crate::mqtt::desired_doc(d.desired_version, &d.desired),
        )
        .await
        .map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}
