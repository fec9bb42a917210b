// Applies the secure broker's SCRAM users and ACLs through Kafka's own Admin API, as the super user.
// Compiled once by deploy/local/kafka_acl.py and run with the broker's own jars (`java -cp <classes>:<libs>/* SecureSetup
// client.properties spec.tsv`), so no Kafka command-line tools jar is needed. The spec is written by
// Python from shared/events/ownership.py; each line is one of
//   SCRAM <user> <password>
//   ACL <TOPIC|GROUP|CLUSTER> <LITERAL|PREFIXED> <name> <principal> <operation>
// Both are idempotent: an upsert of a user, and a binding that exists already is kept as it is.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class SecureSetup {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        try (var in = Files.newInputStream(Path.of(args[0]))) {
            config.load(in);
        }
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        List<AclBinding> acls = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            String[] f = line.split("\t");
            if (f[0].equals("SCRAM")) {
                users.add(new UserScramCredentialUpsertion(
                        f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), f[2]));
            } else if (f[0].equals("ACL")) {
                ResourcePattern resource = new ResourcePattern(
                        ResourceType.valueOf(f[1]), f[3], PatternType.valueOf(f[2]));
                AccessControlEntry entry = new AccessControlEntry(
                        f[4], "*", AclOperation.valueOf(f[5]), AclPermissionType.ALLOW);
                acls.add(new AclBinding(resource, entry));
            }
        }
        try (Admin admin = Admin.create(config)) {
            if (!users.isEmpty()) {
                admin.alterUserScramCredentials(users).all().get();
            }
            if (!acls.isEmpty()) {
                admin.createAcls(acls).all().get();
            }
        }
        System.out.println("applied " + users.size() + " users and " + acls.size() + " ACLs");
    }
}
