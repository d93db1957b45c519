//! Request-time views: features computed from the caller's request data and other views'
//! values, by the same compiled expression offline (over a training set's columns) and online
//! (over the few rows of a request).
//!
//! A request-time view declares `request_data` fields and `inputs` views; each feature is a SQL
//! expression that reads request fields by name and input features as `view__feature`, e.g.
//! `amount / user_purchases__avg_purchase_amount_30d`. [`CompiledRequestView`] compiles the
//! expressions once with [`quiver_transforms::RowExpr`] against a fixed input schema (request
//! fields, then every output of every input view, with their declared types). `historical`
//! evaluates it on point-in-time columns; the server evaluates it on the request's values and
//! the online store's. The result is cast to each feature's declared type.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use quiver_core::registry::{FeatureView, RequestField};
use quiver_core::{FeatureRef, Registry, ValueType};
use quiver_transforms::RowExpr;

use crate::error::{Error, Result};
use crate::types::arrow_type;

/// A request-time view with its expressions compiled.
#[derive(Debug, Clone)]
pub struct CompiledRequestView {
    /// The view's name.
    pub view: String,
    /// Request fields, in input order.
    pub fields: Vec<RequestField>,
    /// Input features (every output of every input view), in input order after the fields.
    pub inputs: Vec<(FeatureRef, ValueType)>,
    schema: SchemaRef,
    exprs: Vec<(String, ValueType, RowExpr)>,
}

impl CompiledRequestView {
    /// Compiles every feature of `view` (which must be a request-time view).
    pub fn compile(registry: &Registry, view: &FeatureView) -> Result<Self> {
        let spec = view.request.as_ref().ok_or_else(|| {
            Error::Internal(format!("'{}' is not a request-time view", view.name))
        })?;
        let mut inputs = Vec::new();
        for name in &spec.inputs {
            let input = registry.views.get(name).ok_or_else(|| Error::Expression {
                view: view.name.clone(),
                field: "inputs".into(),
                message: format!("no feature view '{name}'"),
            })?;
            for (feature, t) in input.outputs() {
                inputs.push((
                    FeatureRef {
                        view: name.clone(),
                        feature: feature.to_string(),
                    },
                    t,
                ));
            }
        }
        let mut fields: Vec<Field> = spec
            .fields
            .iter()
            .map(|f| Field::new(&f.name, arrow_type(f.value_type), true))
            .collect();
        fields.extend(
            inputs
                .iter()
                .map(|(r, t)| Field::new(r.full_name(), arrow_type(*t), true)),
        );
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let mut exprs = Vec::new();
        for f in &view.features {
            let sql = f.expr.as_deref().unwrap_or_default();
            let field = format!("features.{}.expr", f.name);
            let compiled =
                RowExpr::compile(sql, Arc::clone(&schema)).map_err(|e| Error::Expression {
                    view: view.name.clone(),
                    field: field.clone(),
                    message: format!(
                        "{e} (request fields: {}; input features: {})",
                        if spec.fields.is_empty() {
                            "none".to_string()
                        } else {
                            spec.fields
                                .iter()
                                .map(|f| f.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        },
                        if inputs.is_empty() {
                            "none".to_string()
                        } else {
                            inputs
                                .iter()
                                .map(|(r, _)| r.full_name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                })?;
            let want = arrow_type(f.value_type);
            let got = compiled.output_field().data_type();
            if got != &want && !datafusion::arrow::compute::can_cast_types(got, &want) {
                return Err(Error::Expression {
                    view: view.name.clone(),
                    field,
                    message: format!("gives {got}, which cannot become the declared {want}"),
                });
            }
            exprs.push((f.name.clone(), f.value_type, compiled));
        }
        Ok(CompiledRequestView {
            view: view.name.clone(),
            fields: spec.fields.clone(),
            inputs,
            schema,
            exprs,
        })
    }

    /// Every request-time view of a registry, compiled.
    pub fn compile_all(registry: &Registry) -> Result<Vec<CompiledRequestView>> {
        registry
            .views
            .values()
            .filter(|v| v.is_request())
            .map(|v| Self::compile(registry, v))
            .collect()
    }

    /// The schema the expressions read.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The features and their types, in declaration order.
    pub fn features(&self) -> impl Iterator<Item = (&str, ValueType)> {
        self.exprs.iter().map(|(n, t, _)| (n.as_str(), *t))
    }

    /// Evaluates every feature on `n` rows. `request[i]` is the column of `fields[i]` (any type
    /// that casts to the declared one; `None`: all null) and `inputs[j]` that of `inputs[j]`.
    /// Returns one column per feature, of its declared type.
    pub fn evaluate(
        &self,
        request: Vec<Option<ArrayRef>>,
        inputs: Vec<ArrayRef>,
        n: usize,
    ) -> Result<Vec<ArrayRef>> {
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (col, field) in request
            .into_iter()
            .chain(inputs.into_iter().map(Some))
            .zip(self.schema.fields())
        {
            columns.push(match col {
                None => new_null_array(field.data_type(), n),
                Some(c) if c.data_type() == field.data_type() => c,
                Some(c) => cast(&c, field.data_type()).map_err(|e| {
                    Error::Output(format!(
                        "request-time view '{}': '{}' is {}, which does not convert to the declared {}: {e}",
                        self.view,
                        field.name(),
                        c.data_type(),
                        field.data_type()
                    ))
                })?,
            });
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.exprs
            .iter()
            .map(|(name, t, e)| {
                let out = e.evaluate(&batch).map_err(|err| Error::Expression {
                    view: self.view.clone(),
                    field: format!("features.{name}.expr"),
                    message: err.to_string(),
                })?;
                let want = arrow_type(*t);
                if out.data_type() == &want {
                    Ok(out)
                } else {
                    Ok(cast(&out, &want)?)
                }
            })
            .collect()
    }
}
