//! The emulator serves the stage that `templates/websocket.yml` deploys. (Its routes are
//! `Route::ALL`, which the template checks compare with the template.)

#[test]
fn the_gateway_serves_the_stage_of_the_sam_template() {
    let template = webchat_templates::websocket_template().expect("templates/websocket.yml parses");
    assert_eq!(
        webchat_local::Config::default().stage,
        template.stage_name()
    );
}
