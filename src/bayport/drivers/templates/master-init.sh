# The first master: kubeadm init with Bayport's static admin token, flannel, then the CA to Heat.
echo "DISCOVERY_URL=__DISCOVERY_URL__" >> /etc/bayport/bay.env
mkdir -p /etc/kubernetes/bayport
echo '__ADMIN_TOKEN__,bayport-admin,bayport-admin,"system:masters"' > /etc/kubernetes/bayport/tokens.csv
chmod 600 /etc/kubernetes/bayport/tokens.csv
PRIVATE_IP=$(hostname -I | awk '{print $1}')
cat > /etc/bayport/kubeadm.yaml <<KUBEADM
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
  - token: "__BOOTSTRAP_TOKEN__"
    ttl: "0s"
    usages: [signing, authentication]
    groups: ["system:bootstrappers:kubeadm:default-node-token"]
certificateKey: "__CERTIFICATE_KEY__"
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
controlPlaneEndpoint: "${PRIVATE_IP}:6443"
networking:
  podSubnet: "__POD_NETWORK_CIDR__"
apiServer:
  certSANs: ["__PUBLIC_IP__", "${PRIVATE_IP}"]
  extraArgs:
    token-auth-file: /etc/kubernetes/bayport/tokens.csv
  extraVolumes:
    - name: bayport-tokens
      hostPath: /etc/kubernetes/bayport
      mountPath: /etc/kubernetes/bayport
      readOnly: true
      pathType: DirectoryOrCreate
KUBEADM
kubeadm init --config /etc/bayport/kubeadm.yaml --upload-certs
export KUBECONFIG=/etc/kubernetes/admin.conf
kubectl apply -f https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml
until kubectl get --raw /readyz; do sleep 5; done
CA=$(base64 -w0 /etc/kubernetes/pki/ca.crt)
__WAIT_NOTIFY__ --data-binary "{\"status\": \"SUCCESS\", \"id\": \"ca\", \"data\": \"${CA}\"}"
