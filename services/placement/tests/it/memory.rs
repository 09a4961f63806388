//! The in-memory Placement against the contract.

use nova_placement::{MemoryPlacementService, PlacementHandle};

use crate::contract;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    contract::semantics(&MemoryPlacementService::new(), 1).await;
    contract::batch_writes(&MemoryPlacementService::new()).await;
    contract::allocation_bumps(&MemoryPlacementService::new()).await;
    let shared = PlacementHandle::memory();
    let stores = vec![shared.clone(); 8];
    contract::no_overcommit_under_races(&*shared, &stores).await;
}
