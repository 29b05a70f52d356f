//! The emulator serves exactly the API that `templates/websocket.yml` deploys.

use std::collections::BTreeMap;

#[test]
fn gateway_routes_two_way_routes_and_stage_match_the_sam_template() {
    let template = webchat_templates::websocket_template().expect("templates/websocket.yml parses");
    let deployed: BTreeMap<String, bool> = template
        .routes()
        .into_iter()
        .map(|r| (r.key, r.two_way))
        .collect();
    let protocol: BTreeMap<String, bool> = webchat_shared_types::Route::ALL
        .into_iter()
        .map(|route| (route.key().to_string(), route.replies()))
        .collect();
    assert_eq!(
        protocol, deployed,
        "Route::ALL must match the routes in templates/websocket.yml"
    );
    assert_eq!(
        webchat_local::Config::default().stage,
        template.stage_name()
    );
}
