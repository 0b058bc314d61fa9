//! Fiat rates from ExchangeRate-API, `GET /v6/{key}/latest/USD` (answer:
//! `{"result":"success","conversion_rates":{"EUR":0.92,...}}`; the keyless
//! open endpoint `/v6/latest/USD` answers `rates` instead). Rates are units
//! per USD, so the USD price is the inverse. Free plan: 1,500 requests per
//! month and rates updated daily: call it hourly at most
//! (`FIAT_REFRESH_SECS=3600`) and allow fiat prices that age
//! (`FIAT_MAX_AGE_SECS`).

use futures::future::BoxFuture;
use rust_decimal::Decimal;

use super::{
    HttpFetcher, PriceProvider, PriceRequest, ProviderError, Quote, binance::excerpt, complete,
    parse_price,
};

pub struct ExchangeRate {
    base_url: String,
    api_key: Option<String>,
    http: HttpFetcher,
}

const NAME: &str = "exchangerate";

impl ExchangeRate {
    pub fn new(base_url: &str, api_key: Option<String>, http: HttpFetcher) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            http,
        }
    }
}

impl PriceProvider for ExchangeRate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>> {
        Box::pin(async move {
            let url = match &self.api_key {
                Some(key) => format!("{}/v6/{key}/latest/USD", self.base_url),
                None => format!("{}/v6/latest/USD", self.base_url),
            };
            let body = self.http.get_json(&url, &[]).await?;
            if body["result"] != "success" {
                return Err(ProviderError::Malformed {
                    provider: NAME,
                    reason: format!("result is not success: {}", excerpt(&body)),
                });
            }
            let rates = if body["conversion_rates"].is_object() {
                &body["conversion_rates"]
            } else {
                &body["rates"]
            };
            let mut quotes = Vec::new();
            for symbol in request.symbols {
                if symbol == "USD" {
                    quotes.push(Quote {
                        symbol: symbol.clone(),
                        price_usd: Decimal::ONE,
                    });
                    continue;
                }
                let per_usd = &rates[symbol.as_str()];
                if per_usd.is_null() {
                    continue;
                }
                let per_usd = parse_price(NAME, symbol, per_usd)?;
                quotes.push(Quote {
                    symbol: symbol.clone(),
                    price_usd: (Decimal::ONE / per_usd).round_dp(12).normalize(),
                });
            }
            complete(NAME, request.symbols, quotes)
        })
    }
}
