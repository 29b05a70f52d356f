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
    let emulated: BTreeMap<String, bool> = webchat_local::ROUTES
        .iter()
        .map(|(key, two_way)| (key.to_string(), *two_way))
        .collect();
    assert_eq!(
        emulated, deployed,
        "webchat_local::ROUTES must match the routes in templates/websocket.yml"
    );
    assert_eq!(
        webchat_local::Config::default().stage,
        template.stage_name()
    );
}
