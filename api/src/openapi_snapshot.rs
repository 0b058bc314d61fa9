//! The OpenAPI document is the API's published contract: its snapshot
//! (`snapshots/`) makes every change to a path, a schema or an error
//! answer show as a diff in review (`cargo insta review`, or
//! `INSTA_UPDATE=always` to accept).

#[test]
fn the_openapi_document_matches_its_snapshot() {
    let document = crate::routes::openapi().to_pretty_json().unwrap();
    insta::assert_snapshot!("openapi.json", document);
}
