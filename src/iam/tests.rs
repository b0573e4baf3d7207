//! Templates, actions and principals in the generated documents.

use super::setup::role_name;
use super::*;

#[test]
fn templates_fill_the_environment_and_widen_arguments() {
    let env = Environment {
        account: "123456789012".into(),
        region: "eu-west-1".into(),
        partition: "aws".into(),
        ..Default::default()
    };
    assert_eq!(
        fill_template(
            "arn:${partition}:logs:${region}:${account}:log-group:${log_group}:*",
            &env
        ),
        "arn:aws:logs:eu-west-1:123456789012:log-group:*:*"
    );
    assert_eq!(
        fill_template("arn:${partition}:s3:::${bucket}/${key}", &env),
        "arn:aws:s3:::*/*"
    );
    assert_eq!(fill_template("*", &env), "*");
}

#[test]
fn statement_ids_are_alphanumeric() {
    assert_eq!(camel("request_delete_volume"), "RequestDeleteVolume");
    assert_eq!(camel("x"), "X");
}

#[test]
fn principals_must_be_iam_arns() {
    assert!(check_principal("b", "arn:aws:iam::123456789012:user/airlock-broker").is_ok());
    assert!(check_principal("b", "arn:aws:iam::123456789012:role/ops/executor").is_ok());
    assert!(check_principal("b", "arn:aws:iam::123456789012:root").is_ok());
    for bad in [
        "*",
        "arn:aws:iam::*:user/x",
        "airlock-broker",
        "arn:aws:iam::12:user/x",
    ] {
        assert!(check_principal("b", bad).is_err(), "{bad}");
    }
}

#[test]
fn role_names_and_paths() {
    assert_eq!(
        role_name("arn:aws:iam::123456789012:role/airlock-agent"),
        ("airlock-agent".into(), "/".into())
    );
    assert_eq!(
        role_name("arn:aws:iam::123456789012:role/ops/airlock-agent"),
        ("airlock-agent".into(), "/ops/".into())
    );
}

#[test]
fn action_patterns() {
    assert!(action_matches("ec2:Delete*", "ec2:DeleteVolume"));
    assert!(action_matches("ec2:delete*", "EC2:DeleteVolume"));
    assert!(!action_matches("ec2:Delete*", "ec2:DescribeVolumes"));
    assert!(!action_matches("ec2:Delete*", "logs:DeleteLogGroup"));
}
