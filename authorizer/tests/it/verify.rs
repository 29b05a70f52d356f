//! The verifier against an issuer served over real HTTP, with keys made in the test.

use crate::common::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use webchat_authorizer::{AuthConfig, Identity, Refusal, Verifier, MAX_TOKEN_BYTES};

#[tokio::test]
async fn valid_rs256_and_es256_tokens_give_their_identity() {
    let (rsa, ec) = (rsa_key("rsa-1"), ec_key("ec-1"));
    let issuer = TestIssuer::start(&[&rsa, &ec]).await;
    let verifier = issuer.verifier();
    for key in [&rsa, &ec] {
        let token = sign(key, &issuer.claims("Ann"));
        assert_eq!(
            verifier.verify(&token).await,
            Ok(Identity {
                sub: "sub-Ann".into(),
                name: "Ann".into()
            }),
            "{:?}",
            key.alg
        );
    }
    // One JWKS fetch served both.
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn cognito_access_tokens_are_matched_on_client_id() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut claims = issuer.claims("x");
    let claims = claims.as_object_mut().unwrap();
    claims.remove("aud");
    claims.remove("preferred_username");
    claims.insert("client_id".into(), json!(AUDIENCE));
    claims.insert("token_use".into(), json!("access"));
    claims.insert("username".into(), json!("bob"));
    let token = sign(&ec, &json!(claims));
    assert_eq!(verifier.verify(&token).await.unwrap().name, "bob");

    claims.insert("client_id".into(), json!("another-client"));
    let token = sign(&ec, &json!(claims));
    assert_eq!(verifier.verify(&token).await, Err(Refusal::WrongAudience));
}

#[tokio::test]
async fn the_jwks_named_by_auth_jwks_url_is_used_without_discovery() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let jwks = format!("{}/.well-known/jwks.json", issuer.url);
    let verifier =
        Verifier::new(AuthConfig::new(&issuer.url, AUDIENCE, Some(&jwks)).unwrap()).unwrap();
    let token = sign(&ec, &issuer.claims("Ann"));
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut claims = issuer.claims("Ann");
    claims["exp"] = json!(now() - 120);
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::Expired)
    );
    claims["exp"] = json!(now() - 30); // within the 60 s leeway
    assert!(verifier.verify(&sign(&ec, &claims)).await.is_ok());

    let mut claims = issuer.claims("Ann");
    claims["nbf"] = json!(now() + 300);
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::NotYetValid)
    );
}

#[tokio::test]
async fn wrong_issuer_audience_and_token_use_are_refused() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut claims = issuer.claims("Ann");
    claims["iss"] = json!("https://elsewhere.example");
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::WrongIssuer)
    );
    // Refused before any key was fetched.
    assert_eq!(issuer.jwks_fetches(), 0);

    let mut claims = issuer.claims("Ann");
    claims["aud"] = json!("another-client");
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::WrongAudience)
    );
    claims["aud"] = json!(["x", AUDIENCE]);
    assert!(verifier.verify(&sign(&ec, &claims)).await.is_ok());

    let mut claims = issuer.claims("Ann");
    claims["token_use"] = json!("refresh");
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::TokenUse)
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let (ec, other) = (ec_key("ec-1"), ec_key("ec-1"));
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    // Same kid, another key.
    let forged = sign(&other, &issuer.claims("Ann"));
    assert_eq!(verifier.verify(&forged).await, Err(Refusal::BadSignature));
    // A valid token with its claims swapped.
    let good = sign(&ec, &issuer.claims("Ann"));
    let evil = sign(&ec, &issuer.claims("Eve"));
    let parts: Vec<&str> = good.split('.').collect();
    let evil_claims = evil.split('.').nth(1).unwrap();
    let spliced = format!("{}.{}.{}", parts[0], evil_claims, parts[2]);
    assert_eq!(verifier.verify(&spliced).await, Err(Refusal::BadSignature));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let rsa = rsa_key("rsa-1");
    let issuer = TestIssuer::start(&[&rsa]).await;
    let verifier = issuer.verifier();
    let claims = issuer.claims("Ann");
    let header = json!({"alg": "none", "kid": "rsa-1", "typ": "JWT"});
    let unsigned = raw_token(&header, &claims, b"");
    assert!(verifier.verify(&unsigned).await.is_err());
    let with_junk = raw_token(&header, &claims, b"junk");
    assert_eq!(verifier.verify(&with_junk).await, Err(Refusal::Algorithm));
    for alg in ["None", "NONE", "RS512", "PS256", "ES384", "EdDSA", ""] {
        let token = raw_token(&json!({"alg": alg, "kid": "rsa-1"}), &claims, b"junk");
        assert_eq!(
            verifier.verify(&token).await,
            Err(Refusal::Algorithm),
            "{alg}"
        );
    }
    assert_eq!(issuer.jwks_fetches(), 0, "no key was fetched for them");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let (rsa, ec) = (rsa_key("rsa-1"), ec_key("ec-1"));
    let issuer = TestIssuer::start(&[&rsa, &ec]).await;
    let verifier = issuer.verifier();
    for key in [&rsa, &ec] {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let secret = EncodingKey::from_secret(&key.public_bytes).unwrap();
        let token = jsonwebtoken::encode(&header, &issuer.claims("Eve"), &secret).unwrap();
        assert_eq!(verifier.verify(&token).await, Err(Refusal::Algorithm));
        // And the JWK's own text as the secret.
        let secret = EncodingKey::from_secret(key.jwk.to_string().as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &issuer.claims("Eve"), &secret).unwrap();
        assert_eq!(verifier.verify(&token).await, Err(Refusal::Algorithm));
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_is_refused() {
    let (ec, unknown, another) = (ec_key("ec-1"), ec_key("ec-unknown"), ec_key("ec-other"));
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    verifier.prefetch().await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);

    let token = sign(&unknown, &issuer.claims("Ann"));
    assert_eq!(verifier.verify(&token).await, Err(Refusal::UnknownKey));
    assert_eq!(issuer.jwks_fetches(), 2, "exactly one refetch");
    // More unknown kids within the interval fetch nothing.
    assert_eq!(verifier.verify(&token).await, Err(Refusal::UnknownKey));
    let token = sign(&another, &issuer.claims("Ann"));
    assert_eq!(verifier.verify(&token).await, Err(Refusal::UnknownKey));
    assert_eq!(issuer.jwks_fetches(), 2);
    // Known keys still work from the cache.
    assert!(verifier
        .verify(&sign(&ec, &issuer.claims("Ann")))
        .await
        .is_ok());
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_key_rotated_in_at_the_issuer_is_picked_up_by_the_refetch() {
    let (old, new) = (rsa_key("rsa-1"), rsa_key("rsa-2"));
    let issuer = TestIssuer::start(&[&old]).await;
    let verifier = issuer.verifier();
    assert!(verifier
        .verify(&sign(&old, &issuer.claims("Ann")))
        .await
        .is_ok());
    assert_eq!(issuer.jwks_fetches(), 1);
    issuer.set_keys(&[&old, &new]);
    assert_eq!(
        verifier
            .verify(&sign(&new, &issuer.claims("Ann")))
            .await
            .map(|i| i.name),
        Ok("Ann".to_string())
    );
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let good = sign(&ec, &issuer.claims("Ann"));
    let parts: Vec<&str> = good.split('.').collect();
    let claims = issuer.claims("Ann");
    let cases = [
        String::new(),
        "x".into(),
        "a.b".into(),
        format!("{good}.extra"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}..{}", parts[0], parts[2]),
        format!("{}.{}.{}", parts[0], "!!!notbase64!!!", parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", "e30", parts[1], parts[2]), // header {} (no alg)
        format!("{}.{}.{}", "bm90IGpzb24", parts[1], parts[2]), // "not json"
        format!("{}.{}.{}", parts[0], "bm90IGpzb24", parts[2]),
        format!("{}.{}.{}", parts[0], "W10", parts[2]), // claims []
        raw_token(
            &json!({"alg": "ES256", "kid": "ec-1", "crit": ["exp"]}),
            &claims,
            b"sig",
        ),
        raw_token(&json!("ES256"), &claims, b"sig"),
        "\u{0}.\u{0}.\u{0}".into(),
        "é.é.é".into(),
    ];
    for token in &cases {
        let refusal = verifier.verify(token).await.expect_err(token);
        assert!(
            matches!(refusal, Refusal::Malformed(_) | Refusal::Algorithm),
            "{token}: {refusal:?}"
        );
    }
    assert_eq!(issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused_after_the_signature() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    for (claim, value) in [
        ("exp", json!("soon")),
        ("sub", json!(7)),
        ("preferred_username", json!(["a"])),
    ] {
        let mut claims = issuer.claims("Ann");
        claims[claim] = value;
        let refusal = verifier.verify(&sign(&ec, &claims)).await.expect_err(claim);
        assert!(
            matches!(refusal, Refusal::Malformed(_)),
            "{claim}: {refusal:?}"
        );
    }
    let mut claims = issuer.claims("Ann");
    claims.as_object_mut().unwrap().remove("sub");
    assert!(matches!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::Malformed(_))
    ));
}

#[tokio::test]
async fn oversize_tokens_are_refused_unread() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut claims = issuer.claims("Ann");
    claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = sign(&ec, &claims);
    assert_eq!(verifier.verify(&token).await, Err(Refusal::Oversize));
    assert_eq!(
        verifier.verify(&"a".repeat(1 << 20)).await,
        Err(Refusal::Oversize)
    );
    assert_eq!(issuer.jwks_fetches(), 0);
}

#[tokio::test]
async fn names_fall_back_to_cognito_username_then_email_and_are_refused_when_missing() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let mut claims = issuer.claims("x");
    let map = claims.as_object_mut().unwrap();
    map.remove("preferred_username");
    map.insert("email".into(), json!("carol@example.com"));
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await.unwrap().name,
        "carol"
    );
    claims.as_object_mut().unwrap().remove("email");
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await,
        Err(Refusal::NoName)
    );
}

#[tokio::test]
async fn a_preferred_username_that_is_not_a_valid_user_name_is_refused() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    for bad in ["", "   ", "a\u{7}b", &"n".repeat(33)] {
        let mut claims = issuer.claims("x");
        claims["preferred_username"] = json!(bad);
        claims["cognito:username"] = json!("fallback");
        assert_eq!(
            verifier.verify(&sign(&ec, &claims)).await,
            Err(Refusal::InvalidName),
            "{bad:?}"
        );
    }
    // Surrounding white space is trimmed, as for `register`.
    let mut claims = issuer.claims("x");
    claims["preferred_username"] = json!("  Dana ");
    assert_eq!(
        verifier.verify(&sign(&ec, &claims)).await.unwrap().name,
        "Dana"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_not_the_tokens_fault() {
    let ec = ec_key("ec-1");
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let verifier = Verifier::new(AuthConfig::new(&url, AUDIENCE, None).unwrap()).unwrap();
    let mut claims = json!({"iss": url, "aud": AUDIENCE, "sub": "s", "exp": now() + 60, "preferred_username": "A"});
    claims["iss"] = json!(url);
    let refusal = verifier.verify(&sign(&ec, &claims)).await.unwrap_err();
    assert_eq!(refusal, Refusal::KeysUnavailable);
    assert!(!refusal.is_token_fault());
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refetch() {
    let (ec, unknown) = (ec_key("ec-1"), ec_key("ec-unknown"));
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    verifier.prefetch().await.unwrap();
    let token = sign(&unknown, &issuer.claims("Ann"));
    let refusals = futures::future::join_all((0..20).map(|_| verifier.verify(&token))).await;
    assert!(refusals.iter().all(|r| *r == Err(Refusal::UnknownKey)));
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn no_mutation_of_a_valid_token_panics_or_passes() {
    let ec = ec_key("ec-1");
    let issuer = TestIssuer::start(&[&ec]).await;
    let verifier = issuer.verifier();
    let token = sign(&ec, &issuer.claims("Ann"));
    assert!(verifier.verify(&token).await.is_ok());
    let bytes = token.as_bytes();
    for (i, replacement) in (0..bytes.len())
        .step_by(5)
        .zip([b'A', b'_', b'.', b'-', b'z', b'0'].iter().cycle())
    {
        let mut mutated = bytes.to_vec();
        if mutated[i] == *replacement {
            continue;
        }
        mutated[i] = *replacement;
        let mutated = String::from_utf8(mutated).unwrap();
        // A change in the last character's padding bits can leave the same bytes.
        if let Ok(identity) = verifier.verify(&mutated).await {
            assert_eq!(i, bytes.len() - 1, "{mutated} passed as {identity:?}");
        }
    }
    for garbage in [
        "...",
        "..",
        ".",
        "a.b.",
        ".b.c",
        "\u{feff}",
        "%00.%00.%00",
        "eyJ.eyJ.eyJ",
    ] {
        assert!(verifier.verify(garbage).await.is_err(), "{garbage}");
    }
}
