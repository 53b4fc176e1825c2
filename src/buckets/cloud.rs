//! Cloud buckets (S3 and S3-compatible stores, GCS, Azure): building an object store from a
//! bucket's URL and options on top of the provider's environment variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

/// Builds a cloud bucket's store: the provider's usual environment variables first
/// (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as each builder's `from_env` reads them), then what the
/// URL says, then the configured options, so configuration wins over the environment. An
/// option the provider does not know is an error rather than silently ignored.
pub(super) fn store(
    url: &url::Url,
    options: &BTreeMap<String, String>,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath), String> {
    use object_store::ObjectStoreScheme as Scheme;
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};

    fn configure<B, K: std::str::FromStr>(
        mut builder: B,
        options: &BTreeMap<String, String>,
        provider: &str,
        set: impl Fn(B, K, &str) -> B,
    ) -> Result<B, String> {
        for (key, value) in options {
            let k = key.to_ascii_lowercase().parse::<K>().map_err(|_| {
                format!("unknown {provider} option '{key}' (see object_store's {provider} configuration keys)")
            })?;
            builder = set(builder, k, value);
        }
        Ok(builder)
    }
    let unsupported =
        || format!("url '{url}': use file:///DIR, s3://BUCKET, gs://BUCKET or az://CONTAINER");
    let (scheme, prefix) = Scheme::parse(url).map_err(|_| unsupported())?;
    let built = |e: object_store::Error| e.to_string();
    let store: Arc<dyn ObjectStore> = match scheme {
        Scheme::AmazonS3 => Arc::new(
            configure(
                AmazonS3Builder::from_env().with_url(url.as_str()),
                options,
                "S3",
                |b, k: AmazonS3ConfigKey, v| b.with_config(k, v),
            )?
            .build()
            .map_err(built)?,
        ),
        Scheme::GoogleCloudStorage => Arc::new(
            configure(
                GoogleCloudStorageBuilder::from_env().with_url(url.as_str()),
                options,
                "GCS",
                |b, k: GoogleConfigKey, v| b.with_config(k, v),
            )?
            .build()
            .map_err(built)?,
        ),
        Scheme::MicrosoftAzure => Arc::new(
            configure(
                MicrosoftAzureBuilder::from_env().with_url(url.as_str()),
                options,
                "Azure",
                |b, k: AzureConfigKey, v| b.with_config(k, v),
            )?
            .build()
            .map_err(built)?,
        ),
        _ => return Err(unsupported()),
    };
    Ok((store, prefix))
}

#[cfg(test)]
mod tests {
    use super::super::{BucketConfig, Buckets};

    #[test]
    fn unknown_options_and_schemes_are_named() {
        let dir = std::env::temp_dir();
        let bucket = |url: &str, options: &[(&str, &str)]| {
            let config = BucketConfig {
                url: url.into(),
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let buckets = Buckets::new(&dir, [("b".to_string(), config)].into()).unwrap();
            buckets.store("b").map(|_| ())
        };
        let typo = bucket("s3://media", &[("aws_endpont", "http://x")]).unwrap_err();
        assert_eq!(typo.code(), "bucket-config");
        assert!(
            typo.to_string().contains("unknown S3 option 'aws_endpont'"),
            "{typo}"
        );
        assert!(
            bucket("gs://media", &[("google_bucket_nam", "x")])
                .unwrap_err()
                .to_string()
                .contains("unknown GCS option")
        );
        let scheme = bucket("ftp://media", &[]).unwrap_err();
        assert!(
            scheme.to_string().contains("use file:///DIR, s3://"),
            "{scheme}"
        );
        assert!(
            bucket(
                "s3://media",
                &[("aws_region", "us-east-1"), ("AWS_ALLOW_HTTP", "true")]
            )
            .is_ok(),
            "known options in any case"
        );
    }
}
