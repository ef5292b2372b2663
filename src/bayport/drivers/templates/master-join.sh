# A further master: joins the control plane of the first one (certificates via the uploaded,
# certificate-key-encrypted bundle) and keeps the same static admin token.
mkdir -p /etc/kubernetes/bayport
echo '__ADMIN_TOKEN__,bayport-admin,bayport-admin,"system:masters"' > /etc/kubernetes/bayport/tokens.csv
chmod 600 /etc/kubernetes/bayport/tokens.csv
kubeadm join "__INIT_MASTER_IP__:6443" --token "__BOOTSTRAP_TOKEN__" \
  --discovery-token-ca-cert-hash "$(ca_cert_hash)" \
  --control-plane --certificate-key "__CERTIFICATE_KEY__"
__WAIT_NOTIFY__ --data-binary '{"status": "SUCCESS"}'
