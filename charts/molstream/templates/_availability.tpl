{{/* topologySpreadConstraints of a component's Pods, from its values' topologySpreadConstraints:
a constraint without a labelSelector gets the component's selector labels (release and
component), which a values file cannot spell. Call with (list $ "component" component-values);
renders the whole key, or nothing. */}}
{{- define "molstream.topologySpread" -}}
{{- $top := index . 0 -}}
{{- $selector := include "molstream.selectorLabels" (list $top (index . 1)) | fromYaml -}}
{{- $constraints := list -}}
{{- range (index . 2).topologySpreadConstraints -}}
{{- $constraint := deepCopy . -}}
{{- if not $constraint.labelSelector -}}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) -}}
{{- end -}}
{{- $constraints = append $constraints $constraint -}}
{{- end -}}
{{- with $constraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}
